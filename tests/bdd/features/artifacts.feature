Feature: Content-addressed artifacts (OC-CLI-2301)

  Scenario: A diff's lineage leads back to its plan
    Given orchestratord is running
    When I store a plan artifact "# Plan: add a parser"
    And I store a diff artifact "--- a/x.py"
    Then the lineage of the last artifact leads to the first

  Scenario: The same content stores once
    Given orchestratord is running
    When I store a plan artifact "# the same plan"
    And I store a plan artifact "# the same plan"
    Then both stores gave the same id
