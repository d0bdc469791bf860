Feature: SSE token streaming (OC-CLI-2002)

  Scenario: A task streams started, its tokens in order, then exactly one end
    Given orchestratord is running
    When I submit a task with prompt "stream me" and max_tokens 5
    And I read the task's stream
    Then the stream has 5 token events in order
    And the stream ends with "end"
