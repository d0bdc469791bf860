Feature: Streaming
  A task's events arrive over SSE: started, its tokens in order, then exactly one end; a reader
  that comes late or reconnects misses nothing (OC-CLI-2002, 2901).

  Scenario: A task streams started, its tokens in order, then one end
    When I run a task with prompt "stream me", max_tokens 5 and seed 7
    Then its events start with "started" before any "token"
    And it streamed 5 tokens numbered from 0
    And its last event is "end" reporting 5 tokens

  Scenario: The same seed gives the same tokens
    When I run a task with prompt "repeat after me", max_tokens 8 and seed 42
    And I run a task with prompt "repeat after me", max_tokens 8 and seed 42
    Then both runs produced the same text

  Scenario: A late reader resumes after the last event it saw
    Given a task with prompt "resume", max_tokens 4 and seed 3 has finished
    When I read its stream after event 2
    Then the first event read has id 3
    And the events read end with "end"
