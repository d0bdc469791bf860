Feature: Sessions
  Tasks that name a session are its turns; a session can be looked up, deleted, and given a
  budget that refuses what it cannot afford (OC-CLI-2004, 2402).

  Scenario: A session counts its turns
    Given a task in session "s1" ran to its end
    When I look up session "s1"
    Then the session has 1 turn

  Scenario: A deleted session is gone
    Given a task in session "s2" ran to its end
    When I delete session "s2"
    And I look up session "s2"
    Then the request is refused with code "NOT_FOUND" and status 404

  Scenario: A budget refuses a task it cannot afford
    When I submit a task in session "s3" with a budget of 8 tokens and max_tokens 16
    Then the request is refused with code "BUDGET_EXCEEDED" and status 402
