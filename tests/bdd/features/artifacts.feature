Feature: Artifacts
  What agents produce is stored by content: the id is the SHA-256 of the canonical JSON of kind,
  content and parent, the same content is stored once, and lineage never dangles (OC-CLI-2301).

  Scenario: An artifact's id is the hash of its content
    When I store a "plan" artifact with content "# Plan: add a parser"
    Then its id is the SHA-256 of its kind, content and parent
    And fetching it gives back the same content

  Scenario: The same content is stored once and its tags merge
    When I store a "plan" artifact with content "# the same plan" tagged "a"
    And I store a "plan" artifact with content "# the same plan" tagged "b"
    Then both stores gave the same id
    And the artifact is tagged "a" and "b"

  Scenario: A diff's lineage leads back to its plan
    When I store a "plan" artifact with content "# Plan: rename a module"
    And I store a "diff" artifact with content "--- a/x.py" whose parent is the last one
    Then the lineage of the last artifact lists the one before
