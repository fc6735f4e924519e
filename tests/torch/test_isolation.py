"""The torch extra stays optional: ouro's JAX path (model, flow, train, text, data, vae, the CLI
entry) never imports torch, diffusers or transformers; ouro.torch imports nothing on its own."""

import subprocess
import sys


def test_jax_path_imports_no_torch():
    code = ("import sys\n"
            "import ouro, ouro.cli, ouro.model, ouro.flow, ouro.train, ouro.train.sample, ouro.text, ouro.data, "
            "ouro.vae, ouro.torch, ouro.torch.hdm_weights\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'diffusers', 'transformers'))\n"
            "print(bad)\nassert not bad, bad\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]
