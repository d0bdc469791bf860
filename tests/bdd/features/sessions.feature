Feature: Sessions (OC-CLI-2004)

  Scenario: A session counts its turns and can be deleted
    Given orchestratord is running
    When I submit a task with prompt "turn one" and max_tokens 3 in session "bdd-s1"
    And I read the task's stream
    And I get session "bdd-s1"
    Then the answer status is 200
    And the session has 1 turn
    When I delete session "bdd-s1"
    Then the answer status is 204
    When I get session "bdd-s1"
    Then the answer status is 404
    And the error code is "NOT_FOUND"
