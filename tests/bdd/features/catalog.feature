Feature: Model catalog and trust (OC-CLI-2101)

  Scenario: A model whose file matches its digest verifies
    Given orchestratord is running
    And a model file "good.gguf" on disk
    When I register catalog model "bdd-good" with its correct digest
    And I verify the model
    Then the verification status is "verified"

  Scenario: A model whose file does not match its digest fails verification
    Given orchestratord is running
    And a model file "bad.gguf" on disk
    When I register catalog model "bdd-bad" with its wrong digest
    And I verify the model
    Then the verification status is "failed"
