"""The documentation is a promise to operators and API consumers: these tests hold README.md,
docs/OPERATIONS.md and docs/SECURITY.md to the code they describe.

- Every environment variable the code reads (the `bookings_project.env` readers, `os.environ`) is
  in the configuration tables of README.md or docs/OPERATIONS.md, every variable those tables name
  is read, and a default written there as one plain value is the code's default.
- README's API map names every operation the server serves (the OpenAPI schema's inventory), and
  nothing that is not served.
- Every test docs/SECURITY.md names as evidence exists, and so does every dotted code name it
  cites.
"""

import ast
import importlib
import re
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(settings.BASE_DIR)
README = (ROOT / "README.md").read_text()
OPERATIONS = (ROOT / "docs" / "OPERATIONS.md").read_text()
SECURITY = (ROOT / "docs" / "SECURITY.md").read_text()

READERS = {"env_str", "env_int", "env_bool", "env_rate", "env_list", "env_log_level", "env_redis_url",
           "env_origins", "env_time_zone", "env_crontab"}
# Set by the entry points for Django itself (manage.py, wsgi, asgi, celery): not configuration.
NOT_CONFIGURATION = {"DJANGO_SETTINGS_MODULE"}
NO_DEFAULT = object()


def _section(text: str, heading: str) -> str:
    """The text under a `## heading` up to the next `## `."""
    start = text.index(f"\n{heading}\n")
    end = text.find("\n## ", start + len(heading) + 2)
    return text[start:end if end != -1 else len(text)]


def _table_rows(text: str) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and not re.fullmatch(r"\|[\s|:-]+\|?", line):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def _names_in_cell(cell: str) -> list[str]:
    """`A` / `B`, `A`, `B`, and `DJANGO_SUPERUSER_USERNAME` / `_EMAIL` (a suffix of the first's prefix)."""
    names = []
    for name in re.findall(r"`([A-Z_][A-Z0-9_]*)`", cell):
        if name.startswith("_") and names:
            name = names[0].rsplit("_", 1)[0] + name
        names.append(name)
    return names


def documented_variables() -> dict[str, str | None]:
    """Each variable of the two configuration tables, with its default when the row writes one
    plain value per variable (`10` / `5`, or `1`, `1`, `10`), else None."""
    documented = {}
    tables = _section(README, "## Configuration") + _section(OPERATIONS, "## Configuration (environment only)")
    for row in _table_rows(tables):
        if len(row) < 3 or row[0] == "variable":
            continue
        names = _names_in_cell(row[0])
        plain = re.fullmatch(r"`[^`]*`(?:\s*[/,]\s*`[^`]*`)*", row[1])
        defaults = re.findall(r"`([^`]*)`", row[1]) if plain else []
        for index, name in enumerate(names):
            documented[name] = defaults[index] if len(defaults) == len(names) else None
    return documented


def _literal(node):
    try:
        return ast.literal_eval(node)
    except ValueError:
        return NO_DEFAULT


def read_variables() -> dict[str, list[tuple[str, str, object]]]:
    """Every variable a project module (not tests, not benchmarks) reads: name → [(where, reader,
    literal default or NO_DEFAULT)]."""
    reads = {}
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT)
        if relative.parts[0] in {".venv", "benchmarks", "var"} or "tests" in relative.parts or relative.name == "conftest.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(relative))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            reader = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            on_environ = isinstance(func, ast.Attribute) and ast.unparse(func.value) in {"os.environ", "environ"}
            if reader in READERS or (on_environ and reader in {"get", "setdefault"}) or ast.unparse(func) == "os.getenv":
                name = node.args[0]
                if isinstance(name, ast.Constant) and isinstance(name.value, str):
                    default = _literal(node.args[1]) if len(node.args) > 1 else NO_DEFAULT
                    reads.setdefault(name.value, []).append((f"{relative}:{node.lineno}", reader, default))
    for name in NOT_CONFIGURATION:
        reads.pop(name, None)
    return reads


def _as_documented(reader: str, default) -> str | None:
    if reader == "env_bool" and isinstance(default, bool):
        return "1" if default else "0"
    if reader in {"env_int", "env_str", "env_rate", "env_log_level", "env_time_zone", "env_crontab", "get"} and (
            isinstance(default, (int, str)) and not isinstance(default, bool)):
        return str(default)
    return None


def test_every_variable_the_code_reads_is_documented_and_every_documented_one_is_read():
    documented, read = documented_variables(), read_variables()
    assert set(read) - set(documented) == set(), "read by the code but in neither configuration table"
    assert set(documented) - set(read) == set(), "documented but read nowhere"


def test_documented_defaults_are_the_code_s():
    """Where a table writes a plain default (`25`, `10/m`, `30 3 * * *`), it is the one the code
    falls back to, wherever the variable is read with a literal default."""
    documented, wrong = documented_variables(), []
    for name, reads in read_variables().items():
        expected = documented.get(name)
        if not expected:
            continue
        for where, reader, default in reads:
            actual = _as_documented(reader, default)
            if actual not in {None, ""} and actual != expected:  # ("" is unset: `env_str(name, "") or …`)
                wrong.append(f"{name}: documented `{expected}`, {where} defaults to {actual!r}")
    assert wrong == []


def test_the_contract_s_variables_are_all_read():
    """CONTRACT.md §1's names exist (README copies its table)."""
    contract = (ROOT.parent / "shared" / "CONTRACT.md")
    if not contract.exists():
        pytest.skip("../shared/CONTRACT.md is not beside the repository")
    table = _section(contract.read_text(), "## 1. Runtime shape")
    names = {name for row in _table_rows(table) if row[0] != "variable" for name in _names_in_cell(row[0])}
    assert names and names - set(read_variables()) == set()


# --- The API map -------------------------------------------------------------------------------

def _normalized(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def documented_operations() -> set[tuple[str, str]]:
    api = _section(README, "## API map")
    operations = set()
    for row in _table_rows(api):
        if row[0] == "method":
            continue
        methods = [m.strip() for m in row[0].split(",")]
        for path in re.findall(r"`(/[^`\s?]*)[^`]*`", row[1]):  # (`/users/me/conflicts?startTime=&endTime=`)
            operations |= {(method, _normalized("/api/v1" + path)) for method in methods}
    core = api[api.index("Core API (seed 000)"):]
    core = core[:core.index("\n\n")]
    for methods, path in re.findall(r"`([A-Z|]+) (/[^`\s]*)`", core):
        operations |= {(method, _normalized(path)) for method in methods.split("|")}
    return operations


def served_operations(client) -> set[tuple[str, str]]:
    schema = client.get("/api/schema/", {"format": "json"}).json()
    return {(method.upper(), _normalized(path)) for path, operations in schema["paths"].items()
            for method in operations if method in {"get", "post", "put", "patch", "delete"}}


# Served, and documented outside the map: README's "Health" line and docs/OPERATIONS.md.
OUTSIDE_THE_MAP = {("GET", "/metrics")}


@pytest.mark.django_db
def test_the_readme_api_map_lists_every_operation_served_and_only_those(client):
    served, documented = served_operations(client), documented_operations()
    assert documented, "no operation parsed from README's API map"
    assert served - documented - OUTSIDE_THE_MAP == set(), "served but not in README's API map"
    assert documented - served == set(), "in README's API map but not served"
    assert all(f"`{path}`" in README for _, path in OUTSIDE_THE_MAP)


# --- SECURITY.md's evidence ------------------------------------------------------------------

SECURITY_TESTS = "bookings_project/tests/test_security.py"


def _test_functions(path: Path) -> set[str]:
    return {node.name for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test")}


def security_evidence() -> list[tuple[str, str, str | None]]:
    """(row, file or folder, test name or None) for every test reference in the table's last
    column: `T/test_x`, `path.py::test_x`, `path.py` (`test_a`, `test_b`) — a bare test name
    belongs to the file named before it, a bare file name to the folder of the one before."""
    evidence = []
    for row in _table_rows(SECURITY):
        if not row[0].startswith("API"):
            continue
        current = None
        for ref in re.findall(r"`([^`]+)`", row[-1]):
            if ref.startswith("T/"):
                current = SECURITY_TESTS
                evidence.append((row[0], current, ref[2:]))
            elif "::" in ref:
                current, name = ref.split("::")
                evidence.append((row[0], current, name))
            elif re.fullmatch(r"[\w/*.]+\.py|[\w]+/tests", ref):
                if "/" not in ref and current:
                    ref = str(Path(current).parent / ref)
                current = ref
                evidence.append((row[0], current, None))
            elif re.fullmatch(r"test_\w+", ref):
                assert current, f"{row[0]}: {ref} names no file"
                evidence.append((row[0], current, ref))
    return evidence


def test_every_test_security_md_names_exists():
    evidence = security_evidence()
    assert len(evidence) > 40, evidence  # the parse found the table
    missing = []
    for row, where, name in evidence:
        files = sorted(ROOT.glob(where)) if "*" in where else [ROOT / where]
        if not files or not all(f.exists() for f in files):
            missing.append(f"{row}: {where}")
        elif name is not None and not any(name in _test_functions(f) for f in files if f.is_file()):
            missing.append(f"{row}: {where}::{name}")
    assert missing == []


def test_every_code_name_security_md_cites_exists():
    """`catalog.selectors.visible_to`, `reservations.selectors.booking_visible` …: moved or renamed
    code leaves the review pointing at nothing."""
    missing = []
    apps = {"accounts", "catalog", "reservations", "reporting", "ops", "bookings_project"}
    for ref in re.findall(r"`([a-z_]+(?:\.[A-Za-z_]+)+)`", SECURITY):
        module, _, attribute = ref.rpartition(".")
        if ref.split(".")[0] not in apps or ref.endswith(".py"):
            continue
        try:
            found = hasattr(importlib.import_module(module), attribute)
        except ImportError:
            found = False
        if not found:
            missing.append(ref)
    assert missing == []

