"""Start Hindsight: ``python serve.py [streamlit options]`` is ``streamlit run app.py`` with the
process warmed from its first moment (``make run`` starts it this way).

The warm-up thread (``views/_warm.py``: imports, the first chart, the compiled kernels) starts
before Streamlit's server, so it overlaps the server's start and the browser's first load
instead of the first page's script run. Options after ``serve.py`` go to ``streamlit run``.
"""
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def main() -> None:
    """Start the warm-up thread, then run ``streamlit run app.py`` in this process."""
    sys.path.insert(0, str(ROOT))
    from views import _warm

    _warm.prepare()
    _warm.start()
    sys.argv = ["streamlit", "run", str(ROOT / "app.py"), *sys.argv[1:]]
    runpy.run_module("streamlit", run_name="__main__", alter_sys=True)


if __name__ == "__main__":  # not in a worker process that imports the main module again
    main()
