"""The public surface of rlbricks.specs: names, version, packaging."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import rlbricks.specs as specs

PUBLIC = [
    "TensorSpec",
    "Unbounded",
    "Bounded",
    "Categorical",
    "OneHot",
    "MultiCategorical",
    "MultiOneHot",
    "Binary",
    "Composite",
    "SpecError",
    "SpecValueError",
    "SpecKeyError",
    "SpecTypeError",
]


def test_all_lists_the_contract_names():
    assert sorted(specs.__all__) == sorted(PUBLIC)
    for name in PUBLIC:
        assert getattr(specs, name).__module__.startswith("rlbricks.specs._")


def test_version():
    assert specs.__version__ == "0.1.1"


def test_namespace_package_has_no_init():
    src = Path(specs.__file__).parent
    assert (src / "py.typed").exists()
    assert not (src.parent / "__init__.py").exists()


def test_spec_errors_raised_where_a_value_error_was_are_still_value_errors():
    # SpecError itself is now a plain Exception (see test_errors.py); what the specs
    # raise for a bad value is a SpecValueError, so `except ValueError` still catches it.
    assert issubclass(specs.SpecValueError, ValueError)
    with pytest.raises(ValueError):
        specs.Categorical(0)


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_class_has_an_example(name):
    doc = getattr(specs, name).__doc__
    assert doc
    assert ">>>" in doc


@pytest.mark.parametrize(
    "method",
    ["rand", "zero", "is_in", "assert_is_in", "project", "encode", "expand", "to", "clone"],
)
def test_every_spec_implements_the_methods(method):
    for name in [n for n in PUBLIC[1:] if not n.startswith("Spec")]:
        assert callable(getattr(getattr(specs, name), method))


def test_private_modules_import_alone():
    for module in ["_base", "_leaf", "_utils", "_mask", "_segments", "_errors"]:
        importlib.import_module(f"rlbricks.specs.{module}")


def test_tensor_spec_is_abstract():
    with pytest.raises(TypeError):
        specs.TensorSpec()  # type: ignore[abstract]
