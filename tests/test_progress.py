"""The progress bar is a widget in a Jupyter kernel (ipywidgets installed), text in a
terminal and under `ouro run`, whose kernel output streams to the terminal."""

import textwrap

import nbclient
import nbformat

from ouro.progress import progress_bar
from ouro.runs import notebook as run

PROBE = textwrap.dedent('''\
    # %% tags=["parameters"]
    out_dir = ""

    # %%
    import pathlib
    from tqdm.notebook import tqdm_notebook
    from ouro.progress import progress_bar
    bar = progress_bar(total=3)
    pathlib.Path(out_dir, "bar.txt").write_text("widget" if isinstance(bar, tqdm_notebook) else "text")
    ''')


def test_text_bar_outside_jupyter():
    from tqdm.notebook import tqdm_notebook

    with progress_bar(total=2, disable=True) as bar:
        assert not isinstance(bar, tqdm_notebook)


def test_widget_in_a_jupyter_kernel_and_text_under_ouro_run(tmp_path):
    nb_path = tmp_path / "probe.py"
    nb_path.write_text(PROBE)
    result = run.run_notebook(nb_path, run_name="p", runs_root=tmp_path / "runs", progress=False)
    assert result.status == "completed", result.record["error"]
    assert (result.run_dir / "bar.txt").read_text() == "text"  # streamed to the terminal as text

    lab = tmp_path / "lab"  # what JupyterLab's kernel gets: an ipywidgets bar, not a stderr box
    lab.mkdir()
    nb = run.load_notebook(nb_path)
    nb.cells[0].source = f"out_dir = {str(lab)!r}"
    nbclient.NotebookClient(nbformat.from_dict(nb), kernel_name="python3").execute()
    assert (lab / "bar.txt").read_text() == "widget"
