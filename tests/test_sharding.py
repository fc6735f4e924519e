import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from ouro import sharding as shd


def test_make_mesh_shapes_and_errors():
    m = shd.make_mesh(fsdp=2)
    assert dict(m.shape) == {"data": 4, "fsdp": 2} and shd.batch_divisor(m) == 8
    assert dict(shd.make_mesh(devices=jax.devices()[:1]).shape) == {"data": 1, "fsdp": 1}
    assert shd.make_mesh(data=2).devices.size == 2  # an explicit smaller mesh
    with pytest.raises(ValueError, match="fsdp=3"):
        shd.make_mesh(fsdp=3)
    with pytest.raises(ValueError, match="mesh.data=5"):
        shd.make_mesh(data=5, fsdp=2)


def test_rules_table_maps_logical_names():
    m = shd.make_mesh(fsdp=4)
    assert shd.logical_to_spec(("embed", "mlp"), (64, 256), m) == P("fsdp", None)
    assert shd.logical_to_spec(("layers", "mlp", "embed"), (3, 256, 64), m) == P(None, None, "fsdp")
    # an axis the mesh does not divide stays replicated; an axis is never used twice
    assert shd.logical_to_spec(("embed",), (6,), m) == P(None)
    assert shd.logical_to_spec(("embed", "embed"), (8, 8), m) == P("fsdp", None)
    assert shd.logical_to_spec(None, (3, 3), m) == P()
    with pytest.raises(ValueError, match="unknown logical axis 'vocab'"):
        shd.logical_to_spec(("vocab", None), (8, 8), m)
    with pytest.raises(ValueError, match="do not match"):
        shd.logical_to_spec(("embed",), (8, 8), m)
    assert set(shd.RULES) == {"embed", "mlp", "heads", "ctx", "patch", "layers"}


def test_global_batch_is_split_over_devices():
    m = shd.make_mesh(fsdp=2)
    x = np.arange(16 * 3, dtype=np.float32).reshape(16, 3)
    g = shd.global_batch({"x": x}, m)["x"]
    assert g.shape == (16, 3) and len(g.addressable_shards) == 8
    assert g.addressable_shards[0].data.shape == (2, 3)
    np.testing.assert_array_equal(np.asarray(g), x)


def test_match_by_path_suffix():
    ref = {"w": "S_w", "b": "S_b"}
    tree = {"mu": {"w": np.zeros(2), "b": np.zeros(1)}, "count": np.zeros(())}
    out = shd.match_by_path_suffix(tree, ref, "REP")
    assert out == {"mu": {"w": "S_w", "b": "S_b"}, "count": "REP"}
