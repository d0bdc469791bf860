Feature: Cancel (race-free)

  Scenario: A cancelled task's stream ends with CANCELLED and no tokens follow
    Given orchestratord is running
    When I submit a task with prompt "long" and max_tokens 400
    And I submit a task with prompt "queued" and max_tokens 5
    And I cancel the task
    Then the answer status is 204
    When I read the task's stream
    Then the stream ends with an error "CANCELLED"
    And the stream has no token events
