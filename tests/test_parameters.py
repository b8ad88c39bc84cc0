"""The parameter table and the estimator's constructor agree: one list of names and defaults."""

import inspect

import pytest

import fastsoftmax as fs
from fastsoftmax.model.parameters import PARAMETERS, checked


def test_the_table_is_the_constructors_signature():
    signature = inspect.signature(fs.SoftmaxRegression.__init__).parameters
    assert [p.name for p in PARAMETERS] == [name for name in signature if name != "self"]
    for parameter in PARAMETERS:
        assert signature[parameter.name].default == parameter.default, parameter.name
        assert parameter.help and not parameter.help.endswith("."), parameter.name  # argparse style


def test_the_defaults_pass_their_own_checks():
    settings = checked({p.name: p.default for p in PARAMETERS})
    assert (settings.learning_rate, settings.batch_size, settings.average, settings.seed) == (0.5, 100, None, 0)


@pytest.mark.parametrize("name, value, error", [("learning_rate", "0.5", fs.InputTypeError),
                                                ("batch_size", 2.0, fs.InputTypeError),
                                                ("seed", -1, fs.InputError),
                                                ("average", -3, fs.InputError),
                                                ("warm_start", 1, fs.InputTypeError),
                                                ("dtype", "float16", fs.InputTypeError)])
def test_every_check_names_its_parameter(name, value, error):
    params = {p.name: p.default for p in PARAMETERS} | {name: value}
    with pytest.raises(error, match=name):
        checked(params, resolve_backend=False)
