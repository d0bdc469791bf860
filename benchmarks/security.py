"""Admission throughput with authentication and metrics on vs off, measured in the same run.

Four orchestratord processes, one after the other, on the admission setup of ``admission.py``
(every admitted task stays queued): ``plain`` (no auth, no metrics), ``metrics`` (no auth,
Prometheus metrics recorded), ``token`` (a static bearer token and metrics), ``jwt`` (an RS256 JWT
checked against a JWKS file, and metrics). Each ratio is that variant's tasks/s over ``plain``'s;
the aim (issue 13) is at least 0.9. Rounds alternate the variants; each reports its median round.
"""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import yaml
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from benchmarks._common import HOST, PYTHON, Cpus, admission_body, free_port, run_json, running, venv_tool
from benchmarks.admission import AdmissionParams, orchestratord_config
from llama_orch.auth import hash_token

TOKEN = "llorch_bench_token_0123456789abcdefghijklmnop"
ISSUER, AUDIENCE = "https://idp.bench", "llama-orch"
VARIANTS = ("plain", "metrics", "token", "jwt")


def _configs(tmp: Any) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks = tmp / "bench-jwks.json"
    jwks.write_text(json.dumps({"keys": [{**RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "b1"}]}))
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "bench", "exp": now + 3600, "scope": "data"}
    token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "b1"})
    base = orchestratord_config()
    configs = {
        "plain": {**base, "telemetry": {"metrics": False}},
        "metrics": base,
        "token": {**base, "auth": {"tokens": [{"subject": "bench", "sha256": hash_token(TOKEN), "scopes": ["data"]}]}},
        "jwt": {**base, "auth": {"oidc": {"issuer": ISSUER, "audience": AUDIENCE, "jwks_file": str(jwks),
                                          "algorithms": ["RS256"]}}},
    }  # fmt: skip
    headers = {
        "plain": "",
        "metrics": "",
        "token": f"Authorization:Bearer {TOKEN}",
        "jwt": f"Authorization:Bearer {token}",
    }
    return configs, headers


def run(p: AdmissionParams, cpus: Cpus, tmp: Any, rounds: int = 3) -> dict[str, Any]:
    body_file = tmp / "security-body.json"
    body_file.write_bytes(admission_body())
    configs, headers = _configs(tmp)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in VARIANTS}
    # Rounds alternate the variants (plain, metrics, token, jwt, plain, …) so that drifting load on a
    # shared machine spreads over all of them; each variant reports its median round.
    for round_no in range(rounds):
        for name in VARIANTS:
            port = free_port()
            config = tmp / f"security-{name}.yaml"
            config.write_text(yaml.safe_dump(configs[name]))
            data = tmp / f"sec-{name}-{round_no}"
            argv = [venv_tool("orchestratord"), f"--config={config}", f"--port={port}", f"--data-dir={data}"]
            base = f"http://{HOST}:{port}"
            with running(
                f"orchestratord-{name}", argv, cpu=cpus.server, log_dir=tmp, ready_url=f"{base}/healthz"
            ) as srv:
                load = [
                    PYTHON, "-m", "benchmarks.loadgen", f"--url={base}/v1/tasks", f"--body-file={body_file}",
                    f"--concurrency={p.concurrency}", f"--warmup={p.warmup_s}", f"--duration={p.duration_s}",
                    f"--max-requests={p.max_requests}", f"--server-pid={srv.pid}", f"--client={p.client}",
                ]  # fmt: skip
                if headers[name]:
                    load.append(f"--header={headers[name]}")
                runs[name].append(
                    run_json(
                        f"loadgen-{name}", load, cpu=cpus.load, log_dir=tmp, timeout_s=p.warmup_s + p.duration_s + 60
                    )
                )
    results = {name: sorted(rs, key=lambda r: r["tasks_per_s"])[len(rs) // 2] for name, rs in runs.items()}
    cpu_median = {name: sorted(r["server_cpu_us_per_request"] for r in rs)[len(rs) // 2] for name, rs in runs.items()}
    plain = results["plain"]["tasks_per_s"]
    ratios = {name: round(results[name]["tasks_per_s"] / plain, 3) if plain else float("nan") for name in VARIANTS}
    # Server CPU per admitted task, plain's over the variant's: on a shared machine, where the
    # server does not get a whole core, this says more than tasks/s.
    cpu_ratios = {
        name: round(cpu_median["plain"] / cpu_median[name], 3) if cpu_median[name] else float("nan")
        for name in VARIANTS
    }
    notes = []
    for name, r in results.items():
        non_202 = {k: v for k, v in r["statuses"].items() if k != "202"}
        if non_202 or r["errors"]:
            notes.append(f"{name}: non-202 answers {non_202}, transport errors {r['errors']}")
        if r["server_cpu_pct"] < 90:
            notes.append(f"{name}: the server used only {r['server_cpu_pct']:.0f}% of its core: numbers are noisy")
    return {
        "setup": f"admission as in the admission section; {rounds} rounds alternating the variants on the same "
        "cores, median round of each",
        "params": {
            "concurrency": p.concurrency,
            "warmup_s": p.warmup_s,
            "duration_s": p.duration_s,
            "client": p.client,
        },
        **{name: results[name] for name in VARIANTS},
        "rounds": rounds,
        "tasks_per_s_all_rounds": {name: [r["tasks_per_s"] for r in rs] for name, rs in runs.items()},
        "cpu_us_per_task_median": cpu_median,
        "ratios": ratios,
        "cpu_ratios": cpu_ratios,
        "target": {"ratio_min": 0.9},
        "meets_target": all(ratios[n] >= 0.9 for n in ("metrics", "token", "jwt")),
        "notes": notes,
    }
