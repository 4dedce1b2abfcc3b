"""The integration packages load their framework only when used, and say which extra to
install when it is missing (``import staso`` never imports an integration)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from staso.adapters import IntegrationMissing, lazy_exports, require


def test_importing_staso_and_the_packages_imports_no_framework():
    code = ("import sys, staso, staso_langchain, staso_openai_agents, staso_crewai; "
            "st = staso.guard; "
            "print(sorted(m for m in ('langchain', 'langchain_core', 'agents', 'crewai') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_a_missing_framework_names_the_extra_to_install():
    with pytest.raises(IntegrationMissing,
                       match=r"pip install -e '\.\[crewai\]' in the staso repository"):
        require("crewai_not_installed_here", extra="crewai", feature="staso_crewai.guard_crew")
    getattr_ = lazy_exports("staso_langchain", {"thing": "tools"}, needs={},
                            default_need="no_such_framework", extra="langchain")
    with pytest.raises(ImportError, match=r"staso_langchain.thing needs the "
                                          r"'no_such_framework' package"):
        getattr_("thing")
    with pytest.raises(AttributeError, match="has no attribute 'other'"):
        getattr_("other")
