Feature: Model catalog
  A model is registered with the digest its files must have, and verification reads the files
  on the server's disk (OC-CLI-2101). These scenarios write the model file on the runner's disk:
  the server must share it (the embedded server, or one on this machine).

  Scenario: A model whose file matches its digest verifies
    Given a model file on disk
    When I register it in the catalog with its real digest
    Then the catalog entry is "Active" and "unverified"
    When I verify it
    Then the verification status is "verified"

  Scenario: A model whose file changed fails verification
    Given a model file on disk
    And it is registered in the catalog with its real digest
    When the file changes on disk
    And I verify it
    Then the verification status is "failed"
    And the verification names a "mismatch"

  Scenario: The same id cannot be registered twice
    Given a model file on disk
    And it is registered in the catalog with its real digest
    When I register it in the catalog again
    Then the request is refused with code "CONFLICT" and status 409
