Feature: Cancel
  Cancelling ends a task's stream with CANCELLED, whether it was running or still queued; a
  queued task that is cancelled never starts (OC-CLI-2002).

  Scenario: Cancelling a running task ends its stream with CANCELLED
    Given a long task is running
    When I cancel it
    Then its stream ends with the error "CANCELLED"
    And it streamed fewer tokens than it asked for

  Scenario: A task cancelled while queued never starts
    Given every slot of pool "default" is busy
    And a task is queued behind them
    When I cancel the queued task
    Then its stream ends with the error "CANCELLED"
    And it never started

  Scenario: Cancelling an unknown task is refused
    When I cancel task "no-such-task"
    Then the request is refused with code "NOT_FOUND" and status 404
