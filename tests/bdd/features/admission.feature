Feature: Task admission (OC-CLI-2001, 2005, 2701)

  Scenario: A valid task is admitted with a queue position and a predicted start
    Given orchestratord is running
    When I submit a task with prompt "hello" and max_tokens 4
    Then the answer status is 202
    And the answer names a queue position and a predicted start
    And the answer echoes the correlation id

  Scenario: An unknown field is refused with a typed error
    Given orchestratord is running
    When I submit the task body
      """
      {"prompt": "hello", "surprise": true}
      """
    Then the answer status is 400
    And the error code is "INVALID_PARAMS"

  Scenario: max_tokens beyond the pool's limit is refused before it is queued
    Given orchestratord is running
    When I submit a task with prompt "hello" and max_tokens 100000
    Then the answer status is 400
    And the error code is "MAX_TOKENS_EXCEEDED"
