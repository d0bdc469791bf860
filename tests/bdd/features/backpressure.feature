Feature: Backpressure (OC-CLI-2003)

  Scenario: A full queue answers 429 with Retry-After, X-Backoff-Ms and a policy label
    Given orchestratord is running
    When I submit 6 tasks with max_tokens 200
    Then at least 3 answers were 429 with Retry-After and X-Backoff-Ms
