Feature: Admission
  A task is checked before anything is queued: a valid one is admitted with its place in the
  queue and the URL of its stream; anything else is refused with a typed error (OC-CLI-2001, 2005,
  2701, 2801).

  Scenario: A valid task is admitted
    When I submit a task with prompt "hello" and max_tokens 4
    Then the task is admitted with a queue position, a predicted start and a stream url
    And the answer echoes my correlation id

  Scenario: A task pinned to an unknown pool is refused
    When I submit a task with prompt "hello" pinned to pool "no-such-pool"
    Then the request is refused with code "UNKNOWN_POOL" and status 400

  Scenario: More tokens than the pool allows are refused
    When I submit a task asking for one token more than pool "default" allows
    Then the request is refused with code "MAX_TOKENS_EXCEEDED" and status 400

  Scenario: An unknown sampler profile is refused
    When I submit a task with prompt "hello" and sampler profile "llorch/sampler@9"
    Then the request is refused with code "INVALID_PARAMS" and status 400

  Scenario: A task id is used once
    Given a task "dup" was admitted
    When I submit a task "dup" again
    Then the request is refused with code "TASK_EXISTS" and status 409
