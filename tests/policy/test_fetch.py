"""Safe fetch: SSRF vectors refused with typed errors, allowed domains fetched, limits, cache.

Every fetcher here has a stubbed resolver and the guard network backend (conftest): a check that
fails to refuse a vector makes the guard raise AssertionError instead of reaching the address.
"""

from __future__ import annotations

import itertools

import pytest

from llama_orch.policy import (
    BuiltinPolicy,
    FetchCache,
    FetchFailed,
    FetchLimits,
    OutboundRules,
    PolicyDenied,
    Redactor,
    SafeFetcher,
    StaticResolver,
)
from tests.policy.conftest import PUBLIC, PUBLIC_V6, GuardBackend, Upstream

_rebind_answers = itertools.cycle([[PUBLIC], ["127.0.0.1"]])

TABLE = {
    "docs.test": [PUBLIC],
    "docs6.test": [PUBLIC_V6],
    "loop.test": ["127.0.0.1"],
    "localhost": ["127.0.0.1", "::1"],
    "meta.test": ["169.254.169.254"],
    "mixed.test": [PUBLIC, "10.0.0.5"],
    "mapped.test": ["::ffff:169.254.169.254"],
    "v6loop.test": ["::1"],
    "private.test": ["192.168.0.10"],
    "nat64.test": ["64:ff9b::7f00:1"],
    "ula.test": ["fd00::1"],
    "zero.test": ["0.0.0.0"],
    "cgnat.test": ["100.100.100.200"],
    "linklocal6.test": ["fe80::1%eth0"],
}


def _fetcher(guard: GuardBackend, *, domains: list[str] | None = None, **limits: float) -> SafeFetcher:
    rules = {"fetch": OutboundRules(allow_domains=domains if domains is not None else ["*"])}
    return SafeFetcher(
        BuiltinPolicy(rules),
        resolver=StaticResolver(TABLE),
        network=guard,
        limits=FetchLimits(**{"timeout_s": 2.0, "read_timeout_s": 1.0, **limits}),  # type: ignore[arg-type]
    )


# (vector, the rule that must refuse it). With allow_domains ["*"], only the URL and address rules stand
# between each of these and the network.
DIRECT = [
    ("http://127.0.0.1/", "ssrf:loopback"),
    ("http://127.8.9.10/", "ssrf:loopback"),
    ("http://127.1/", "url:ip-spelling"),
    ("http://2130706433/", "url:ip-spelling"),
    ("http://0x7f000001/", "url:ip-spelling"),
    ("http://0177.0.0.1/", "url:ip-spelling"),
    ("http://0x7f.0.0.1/", "url:ip-spelling"),
    ("http://017700000001/", "url:ip-spelling"),
    ("http://127.000.000.001/", "url:ip-spelling"),
    ("http://0/", "url:ip-spelling"),
    ("http://0.0.0.0/", "ssrf:unspecified"),
    ("http://[::1]/", "ssrf:loopback"),
    ("http://[::]/", "ssrf:unspecified"),
    ("http://[::ffff:127.0.0.1]/", "ssrf:loopback"),
    ("http://[::ffff:7f00:1]/", "ssrf:loopback"),
    ("http://[0:0:0:0:0:ffff:169.254.169.254]/", "ssrf:link-local"),
    ("http://[::127.0.0.1]/", "ssrf:loopback"),
    ("http://[64:ff9b::a9fe:a9fe]/", "ssrf:link-local"),
    ("http://[2002:7f00:1::]/", "ssrf:loopback"),
    ("http://[fe80::1%25eth0]/", "url:ip-zone"),
    ("http://[fe80::1]/", "ssrf:link-local"),
    ("http://[fc00::1]/", "ssrf:private"),
    ("http://[fd00:ec2::254]/latest/meta-data/", "ssrf:private"),
    ("http://169.254.169.254/latest/meta-data/iam/security-credentials/", "ssrf:link-local"),
    ("http://10.0.0.1/", "ssrf:private"),
    ("http://172.16.0.1/", "ssrf:private"),
    ("http://192.168.1.1/", "ssrf:private"),
    ("http://100.100.100.200/latest/meta-data/", "ssrf:shared"),
    ("http://224.0.0.1/", "ssrf:multicast"),
    ("http://255.255.255.255/", "ssrf:reserved"),
    ("http://240.0.0.1/", "ssrf:reserved"),
    ("file:///etc/passwd", "url:scheme"),
    ("gopher://127.0.0.1:6379/_INFO", "url:scheme"),
    ("ftp://docs.test/x", "url:scheme"),
    ("dict://127.0.0.1:11211/stat", "url:scheme"),
    ("http://user:pass@docs.test/", "url:userinfo"),
    ("http://docs.test@127.0.0.1/", "url:userinfo"),
    ("http://127.0.0.1\\@docs.test/", "url:invalid"),
    ("http://%31%32%37.0.0.1/", "url:invalid"),
    ("http://\uff11\uff12\uff17\u3002\uff10\u3002\uff10\u3002\uff11/", "ssrf:loopback"),
    ("http:///etc/passwd", "url:invalid"),
    ("http://docs.test:0/", "url:invalid"),
    ("http://docs.test /", "url:invalid"),
    # DNS names that resolve somewhere they must not go
    ("http://loop.test/", "ssrf:loopback"),
    ("http://localhost/", "ssrf:loopback"),
    ("http://LOCALHOST./", "ssrf:loopback"),
    ("http://meta.test/", "ssrf:link-local"),
    ("http://mixed.test/", "ssrf:private"),
    ("http://mapped.test/", "ssrf:link-local"),
    ("http://v6loop.test/", "ssrf:loopback"),
    ("http://private.test/", "ssrf:private"),
    ("http://nat64.test/", "ssrf:loopback"),
    ("http://ula.test/", "ssrf:private"),
    ("http://zero.test/", "ssrf:unspecified"),
    ("http://cgnat.test/", "ssrf:shared"),
    ("http://linklocal6.test/", "ssrf:link-local"),
]


@pytest.mark.parametrize(("url", "rule"), DIRECT, ids=[u for u, _ in DIRECT])
async def test_ssrf_vectors_are_refused_before_any_connect(guard: GuardBackend, url: str, rule: str) -> None:
    fetcher = _fetcher(guard)
    with pytest.raises(PolicyDenied) as caught:
        await fetcher.fetch(url)
    assert caught.value.rule == rule
    assert caught.value.status == 403 and caught.value.envelope().policy_label == rule
    assert guard.attempts == []


def test_there_are_at_least_thirty_vectors() -> None:
    assert len(DIRECT) + len(REDIRECTS) >= 30


REDIRECTS = [
    ("http://169.254.169.254/latest/meta-data/", "ssrf:link-local"),
    ("http://meta.test/", "ssrf:link-local"),
    ("http://loop.test:8080/admin", "ssrf:loopback"),
    ("http://[::ffff:127.0.0.1]/", "ssrf:loopback"),
    ("http://2130706433/", "url:ip-spelling"),
    ("file:///etc/shadow", "url:scheme"),
    ("gopher://127.0.0.1:25/", "url:scheme"),
    ("http://x@127.0.0.1/", "url:userinfo"),
]


@pytest.mark.parametrize(("location", "rule"), REDIRECTS, ids=[u for u, _ in REDIRECTS])
async def test_every_redirect_hop_is_checked_again(guard: GuardBackend, location: str, rule: str) -> None:
    fetcher = _fetcher(guard)
    with pytest.raises(PolicyDenied) as caught:
        await fetcher.fetch(f"http://docs.test/redirect?to={location}")
    assert caught.value.rule == rule
    assert guard.attempts == [(PUBLIC, 80)]  # the first hop only


async def test_dns_rebinding_between_check_and_connect_cannot_redirect_the_connection(guard: GuardBackend) -> None:
    answers = iter([[PUBLIC], ["127.0.0.1"], ["127.0.0.1"]])
    resolver = StaticResolver({"rebind.test": lambda: next(answers)})
    fetcher = SafeFetcher(
        BuiltinPolicy({"fetch": OutboundRules(allow_domains=["*"])}), resolver=resolver, network=guard
    )
    result = await fetcher.fetch("http://rebind.test/ok")
    assert result.status == 200 and result.body.startswith(b"hello docs")
    # One lookup, and the connection went to the address that was checked.
    assert resolver.lookups == ["rebind.test"]
    assert guard.attempts == [(PUBLIC, 80)]
    assert result.hops[0].address == PUBLIC


async def test_a_rebinding_answer_on_the_next_hop_is_refused(guard: GuardBackend) -> None:
    answers = iter([[PUBLIC], ["127.0.0.1"]])
    resolver = StaticResolver({"rebind.test": lambda: next(answers)})
    fetcher = SafeFetcher(
        BuiltinPolicy({"fetch": OutboundRules(allow_domains=["*"])}), resolver=resolver, network=guard
    )
    with pytest.raises(PolicyDenied) as caught:
        await fetcher.fetch("http://rebind.test/redirect?to=http://rebind.test/ok")
    assert caught.value.rule == "ssrf:loopback"
    assert guard.attempts == [(PUBLIC, 80)]


async def test_an_allowed_domain_is_fetched_and_others_are_not_even_resolved(guard: GuardBackend) -> None:
    resolver = StaticResolver(TABLE)
    fetcher = SafeFetcher(
        BuiltinPolicy({"fetch": OutboundRules(allow_domains=["docs.test"])}), resolver=resolver, network=guard
    )
    result = await fetcher.fetch("http://docs.test/ok")
    assert result.status == 200 and result.cache == "miss"
    assert result.text() == "hello docs sk-abcdefghijklmnopqrstuvwxyz"
    with pytest.raises(PolicyDenied) as caught:
        await fetcher.fetch("http://other.test/ok")
    assert caught.value.rule == "domain:not-allowed"
    assert resolver.lookups == ["docs.test"]


async def test_ipv6_public_address_is_fetched(guard: GuardBackend) -> None:
    result = await _fetcher(guard).fetch("http://docs6.test/ok")
    assert result.status == 200 and result.hops[0].address == PUBLIC_V6


async def test_a_loopback_network_can_be_allowed_explicitly(upstream: Upstream) -> None:
    guard = GuardBackend(routes={("127.0.0.1", upstream.port): ("127.0.0.1", upstream.port)})
    rules = {"fetch": OutboundRules(allow_domains=["127.0.0.1"], allow_networks=["127.0.0.1/32"])}
    fetcher = SafeFetcher(BuiltinPolicy(rules), resolver=StaticResolver({}), network=guard)
    result = await fetcher.fetch(f"http://127.0.0.1:{upstream.port}/ok")
    assert result.status == 200 and result.hops[0].rule == "address:allowed-network"


async def test_wildcard_domains_match_subdomains_only(guard: GuardBackend) -> None:
    resolver = StaticResolver({"api.docs.test": [PUBLIC], "docs.test": [PUBLIC]})
    policy = BuiltinPolicy({"fetch": OutboundRules(allow_domains=["*.docs.test"], deny_domains=["bad.docs.test"])})
    fetcher = SafeFetcher(policy, resolver=resolver, network=guard)
    assert (await fetcher.fetch("http://api.docs.test/ok")).status == 200
    with pytest.raises(PolicyDenied, match="not an allowed domain"):
        await fetcher.fetch("http://docs.test/ok")
    with pytest.raises(PolicyDenied) as caught:
        await fetcher.fetch("http://bad.docs.test/ok")
    assert caught.value.rule == "domain:denied"


async def test_scheme_not_allowed_for_the_purpose(guard: GuardBackend) -> None:
    policy = BuiltinPolicy({"fetch": OutboundRules(allow_domains=["*"], allow_schemes=["https"])})
    fetcher = SafeFetcher(policy, resolver=StaticResolver(TABLE), network=guard)
    with pytest.raises(PolicyDenied) as caught:
        await fetcher.fetch("http://docs.test/ok")
    assert caught.value.rule == "scheme:not-allowed" and guard.attempts == []


async def test_unknown_purpose_is_refused(guard: GuardBackend) -> None:
    fetcher = SafeFetcher(BuiltinPolicy({}), purpose="fetch", resolver=StaticResolver(TABLE), network=guard)
    with pytest.raises(PolicyDenied) as caught:
        await fetcher.fetch("http://docs.test/ok")
    assert caught.value.rule == "purpose:unknown"


async def test_methods_other_than_get_and_head_are_refused(guard: GuardBackend) -> None:
    with pytest.raises(PolicyDenied) as caught:
        await _fetcher(guard).fetch("http://docs.test/ok", method="POST")
    assert caught.value.rule == "method:not-allowed" and guard.attempts == []


async def test_head_reads_no_body(guard: GuardBackend) -> None:
    result = await _fetcher(guard).fetch("http://docs.test/big?n=100000", method="HEAD", max_bytes=10)
    assert result.status == 200 and result.body == b"" and result.headers["content-length"] == "100000"


async def test_oversize_body_with_content_length(guard: GuardBackend) -> None:
    with pytest.raises(FetchFailed) as caught:
        await _fetcher(guard).fetch("http://docs.test/big?n=5000", max_bytes=1000)
    assert caught.value.reason == "too_large" and caught.value.status == 502


async def test_oversize_chunked_body_is_cut_as_it_arrives(guard: GuardBackend) -> None:
    with pytest.raises(FetchFailed) as caught:
        await _fetcher(guard).fetch("http://docs.test/big-chunked", max_bytes=5000)
    assert caught.value.reason == "too_large"


async def test_the_configured_limit_caps_what_a_caller_asks_for(guard: GuardBackend) -> None:
    fetcher = _fetcher(guard)
    fetcher.limits.max_bytes = 1000
    with pytest.raises(FetchFailed, match="limit of 1000"):
        await fetcher.fetch("http://docs.test/big?n=5000", max_bytes=10**9)


async def test_slow_body_hits_the_deadline(guard: GuardBackend) -> None:
    with pytest.raises(FetchFailed) as caught:
        await _fetcher(guard, timeout_s=0.8, read_timeout_s=5.0).fetch("http://docs.test/slow")
    assert caught.value.reason == "timeout" and caught.value.retriable


async def test_slow_headers_hit_the_read_timeout(guard: GuardBackend) -> None:
    with pytest.raises(FetchFailed) as caught:
        await _fetcher(guard, timeout_s=5.0, read_timeout_s=0.3).fetch("http://docs.test/slow-headers")
    assert caught.value.reason == "timeout"


async def test_too_many_redirects(guard: GuardBackend) -> None:
    fetcher = _fetcher(guard)
    fetcher.limits.max_redirects = 3
    with pytest.raises(FetchFailed) as caught:
        await fetcher.fetch("http://docs.test/loop")
    assert caught.value.reason == "redirects" and len(guard.attempts) == 4


async def test_a_name_that_does_not_resolve(guard: GuardBackend) -> None:
    with pytest.raises(FetchFailed) as caught:
        await _fetcher(guard).fetch("http://nowhere.test/")
    assert caught.value.reason == "dns" and guard.attempts == []


async def test_connection_refused_is_a_typed_error(upstream: Upstream) -> None:
    guard = GuardBackend(routes={(PUBLIC, 80): ("127.0.0.1", 1)})
    with pytest.raises(FetchFailed) as caught:
        await _fetcher(guard).fetch("http://docs.test/ok")
    assert caught.value.reason == "connect" and caught.value.retriable


async def test_allowed_redirect_is_followed_and_recorded(guard: GuardBackend) -> None:
    result = await _fetcher(guard).fetch("http://docs.test/redirect?to=/ok")
    assert result.status == 200 and [h.status for h in result.hops] == [302, 200]
    assert result.final_url == "http://docs.test/ok"


async def test_nothing_of_the_caller_is_forwarded_and_cookies_are_not_kept(guard: GuardBackend) -> None:
    result = await _fetcher(guard).fetch("http://docs.test/cookie")
    assert result.text() == "seen:"
    assert "set-cookie" not in result.headers and "x-internal" not in result.headers


async def test_cache_serves_fresh_entries_without_a_request(guard: GuardBackend) -> None:
    fetcher = _fetcher(guard)
    first = await fetcher.fetch("http://docs.test/ok")
    second = await fetcher.fetch("http://docs.test/ok")
    assert (first.cache, second.cache) == ("miss", "hit") and second.body == first.body
    assert guard.attempts == [(PUBLIC, 80)]


async def test_cache_hit_still_asks_the_policy(guard: GuardBackend) -> None:
    fetcher = _fetcher(guard)
    await fetcher.fetch("http://docs.test/ok")
    fetcher.policy = BuiltinPolicy({"fetch": OutboundRules(allow_domains=["elsewhere.test"])})
    with pytest.raises(PolicyDenied):
        await fetcher.fetch("http://docs.test/ok")


async def test_cache_revalidates_with_the_etag(guard: GuardBackend, upstream: Upstream) -> None:
    fetcher = _fetcher(guard)
    first = await fetcher.fetch("http://docs.test/etag")
    second = await fetcher.fetch("http://docs.test/etag")
    assert (first.cache, second.cache) == ("miss", "revalidated")
    assert second.body == b"versioned" and upstream.etag_hits == 2


async def test_cache_can_be_turned_off(guard: GuardBackend) -> None:
    fetcher = _fetcher(guard)
    fetcher.cache = None
    await fetcher.fetch("http://docs.test/ok")
    assert (await fetcher.fetch("http://docs.test/ok")).cache == "miss"


async def test_cache_is_bounded() -> None:
    now = [0.0]
    cache = FetchCache(max_entries=2, max_bytes=10, clock=lambda: now[0])
    cache.store("GET", "a", 200, {"cache-control": "max-age=5"}, b"1234")
    cache.store("GET", "b", 200, {}, b"1234")
    cache.store("GET", "c", 200, {}, b"1234")
    assert len(cache) == 2 and cache.get("GET", "a") is None and cache.size_bytes == 8
    assert cache.store("GET", "d", 200, {"cache-control": "no-store"}, b"1") is None
    assert cache.store("GET", "e", 200, {}, b"x" * 11) is None
    entry = cache.store("GET", "f", 200, {"cache-control": "max-age=5"}, b"1")
    assert entry is not None and cache.is_fresh(entry)
    now[0] = 6.0
    assert not cache.is_fresh(entry)


async def test_urls_with_secrets_are_shown_redacted(guard: GuardBackend) -> None:
    result = await _fetcher(guard).fetch("http://docs.test/ok?api_key=hunter2hunter2&page=2")
    assert "hunter2" not in result.url and "page=2" in result.url
    trace = result.trace_content(Redactor(literals=["hunter2hunter2"]))
    assert "hunter2" not in str(trace)
    # The body's secret-shaped text is redacted in the trace, not in what the caller asked for.
    assert "sk-abcdefghijklmnopqrstuvwxyz" not in trace["body"] and trace["sha256"] == result.sha256


async def test_denied_errors_do_not_echo_url_secrets(guard: GuardBackend) -> None:
    with pytest.raises(PolicyDenied) as caught:
        await _fetcher(guard, domains=[]).fetch("http://docs.test/?token=abcd1234secret")
    assert "abcd1234secret" not in caught.value.message
