"""The architecture's one-way dependencies, checked on the source: a test fails when an import crosses a line."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARIES = ("cohorts", "model_runtime", "analysis")
GPU_PACKAGES = ("torch", "vllm", "transformers")


def imports_of(path: Path) -> list[tuple[str, int, bool]]:
    """(module, line, at_top_level) for every import in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno, id(node) in top_level) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno, id(node) in top_level))
    return found


def python_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("library", LIBRARIES)
def test_libraries_know_nothing_of_the_app_or_each_other(library):
    others = {"study_app", "streamlit", *LIBRARIES} - {library}
    offences = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in python_files(library)
        for module, line, _ in imports_of(path)
        if module.split(".")[0] in others
    ]
    assert not offences, "\n".join(offences)


def test_only_the_web_package_imports_streamlit():
    offences = [
        f"{path.relative_to(ROOT)}:{line}"
        for package in ("study_app", *LIBRARIES)
        for path in python_files(package)
        if not str(path.relative_to(ROOT)).startswith("study_app/web/")
        and path.name != "serve.py"
        for module, line, _ in imports_of(path)
        if module.split(".")[0] == "streamlit"
    ]
    assert not offences, "streamlit imported outside study_app/web/: " + ", ".join(offences)


def test_gpu_packages_are_imported_lazily_only():
    offences = [
        f"{path.relative_to(ROOT)}:{line} imports {module} at module level"
        for package in ("study_app", *LIBRARIES)
        for path in python_files(package)
        for module, line, top in imports_of(path)
        if top and module.split(".")[0] in GPU_PACKAGES
    ]
    assert not offences, "\n".join(offences)


def test_no_grab_bag_modules():
    grab_bags = [p for package in ("study_app", *LIBRARIES) for p in python_files(package)
                 if p.stem in ("utils", "helpers", "misc", "common")]
    assert not grab_bags, grab_bags


def test_pages_hold_no_sql():
    web = ROOT / "study_app" / "web"
    offences = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in sorted(web.rglob("*.py"))
        for module, line, _ in imports_of(path)
        if module.split(".")[0] == "sqlalchemy" or module.startswith("study_app.store")
    ]
    assert not offences, "\n".join(offences)


def test_no_module_imports_another_modules_private_names():
    """A rule reached through another module's private helper has two homes; public names say which is the one."""
    offences = []
    for package in ("study_app", *LIBRARIES):
        for path in python_files(package):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                        and node.module.split(".")[0] in ("study_app", *LIBRARIES) and node.module != module:
                    offences += [f"{path.relative_to(ROOT)}:{node.lineno} imports {node.module}.{alias.name}"
                                 for alias in node.names if alias.name.startswith("_") and not alias.name.startswith("__")]
    assert not offences, "\n".join(offences)


def test_services_studies_is_the_study_record_not_a_hub():
    """Creation, launch and balance live in their own modules; the study record module holds none of them."""
    import study_app.services.studies as record

    for name in ("create_study", "import_cohort", "reallocate", "launch_study", "launch_checklist", "describe_study"):
        assert not hasattr(record, name), name


def test_a_draft_is_built_in_one_place():
    """Every stored draft goes through services.draft_records.new_draft, which normalises its text for readers."""
    builders = []
    for path in python_files("study_app"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Draft":
                builders.append(str(path.relative_to(ROOT)))
    assert builders == ["study_app/services/draft_records.py"], builders


def test_the_server_starts_without_the_statistics_or_the_drafting_client():
    """The reader app and the CLI load the design (which carries an analysis plan) but not scipy, statsmodels,
    plotly, the text metrics' libraries (rouge-score pulls in nltk) or the OpenAI client: those cost a second of every
    server start and every CLI command."""
    import subprocess
    import sys

    heavy = ("scipy", "statsmodels", "plotly", "pingouin", "openai", "pandas", "sacrebleu", "rouge_score", "nltk")
    probe = ("import sys, study_app.web.server, study_app.cli, study_app.designs; "
             f"print(','.join(m for m in {heavy!r} if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parents[1]).stdout.strip()
    assert loaded == "", f"imported at start: {loaded}"
