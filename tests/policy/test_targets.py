"""URL parsing and address classes (the part of the SSRF defence that needs no network)."""

from __future__ import annotations

import ipaddress

import pytest

from llama_orch.policy import TargetError, address_class, parse_target


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("8.8.8.8", "global"),
        ("2001:4860:4860::8888", "global"),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:8.8.8.8", "global"),
        ("2002:0a00:0001::", "private"),  # 6to4 of 10.0.0.1
        ("64:ff9b::0a00:0001", "private"),  # NAT64 of 10.0.0.1
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "private"),  # Teredo: 2001::/23 is not global
        ("64:ff9b::808:808", "global"),  # NAT64 of 8.8.8.8
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("fec0::1", "private"),
        ("100.64.0.1", "shared"),
        ("0.1.2.3", "unspecified"),
        ("192.0.2.1", "private"),  # documentation range: not global
        ("ff02::1", "multicast"),
    ],
)
def test_address_classes(address: str, kind: str) -> None:
    assert address_class(ipaddress.ip_address(address)) == kind


def test_parse_normalises_the_host() -> None:
    t = parse_target("HTTPS://Docs.Python.ORG./3/?q=1")
    assert (t.scheme, t.host, t.port, t.ip) == ("https", "docs.python.org", 443, None)
    assert t.authority == "docs.python.org"
    assert parse_target("http://[2001:db8::1]:8080/").authority == "[2001:db8::1]:8080"
    assert parse_target("http://b\u00fccher.example/").host == "xn--bcher-kva.example"


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("", "url:invalid"),
        ("not a url", "url:invalid"),
        ("//docs.test/", "url:scheme"),
        ("javascript:alert(1)", "url:scheme"),
        ("data:text/plain,hi", "url:scheme"),
        ("http://a..b/", "url:invalid"),
        ("http://docs.test:99999/", "url:invalid"),
        ("http://[not-v6]/", "url:invalid"),
        ("http://1.2.3/", "url:ip-spelling"),
        ("http://1.2.3.4.5/", "url:ip-spelling"),
        ("http://x.0x10/", "url:ip-spelling"),
    ],
)
def test_parse_refuses(url: str, rule: str) -> None:
    with pytest.raises(TargetError) as caught:
        parse_target(url)
    assert caught.value.rule == rule
