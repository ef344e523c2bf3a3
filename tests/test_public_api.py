"""The names re-exported by ``cmrm`` resolve to the objects, never to submodules."""

import types

import cmrm
import cmrm.generation.generate  # imports every engine submodule first, as real use does)


def test_every_export_is_the_object_not_a_module() -> None:
    for name in cmrm.__all__:
        value = getattr(cmrm, name)
        assert not isinstance(value, types.ModuleType), f"cmrm.{name} is a module"
    assert callable(cmrm.steer) and callable(cmrm.calibrate) and callable(cmrm.load_vlm)
