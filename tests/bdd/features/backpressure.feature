Feature: Backpressure
  A pool whose bounded queue is full refuses new tasks with 429, says how long to wait and which
  rule refused them; room in the queue admits tasks again (OC-CLI-2003, 2802, 2803).

  Scenario: A full queue answers 429 with retry advice and a policy label
    Given the queue of pool "default" is full
    When I submit a batch task without retrying
    Then the request is refused with code "ADMISSION_REJECT" and status 429
    And the refusal advises a wait in Retry-After and X-Backoff-Ms
    And the refusal's policy label is "queue-full:reject"

  Scenario: Room in the queue admits tasks again
    Given the queue of pool "default" is full
    When the queued tasks are cancelled
    And I submit a batch task without retrying
    Then the task is admitted with a queue position, a predicted start and a stream url
