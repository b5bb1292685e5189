"""Start Hindsight: ``python serve.py [streamlit options]`` is ``streamlit run app.py`` in a
warmed process (``make run`` starts it this way).

Before Streamlit's server answers, ``views/_warm.py`` loads what a first page and a first
backtest need (imports, the default strategy's kernels, the Details page's charts); its
background thread then loads the other strategies' kernels. Options after ``serve.py`` go to
``streamlit run``.
"""
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def main() -> None:
    """Warm this process, start the warm-up thread, then run ``streamlit run app.py`` here."""
    sys.path.insert(0, str(ROOT))
    from views import _warm

    _warm.prepare()
    _warm.start()
    sys.argv = ["streamlit", "run", str(ROOT / "app.py"), *sys.argv[1:]]
    runpy.run_module("streamlit", run_name="__main__", alter_sys=True)


if __name__ == "__main__":  # not in a worker process that imports the main module again
    main()
