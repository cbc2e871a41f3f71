"""`viper serve`: one process that loads the models once and scores videos sent over HTTP (FastAPI + uvicorn),
with a page to watch a video beside its emotion trace. Needs the `serve` extra (`pip install "viper-emotion[serve]"`);
`import viper.serve` loads neither FastAPI nor a model. `Client` drives a running server from a script."""

from ..errors import ViperError
from .client import Client, ServeError
from .config import ServeConfig

__all__ = ["Client", "ServeConfig", "ServeError", "serve_forever"]


def serve_forever(config: ServeConfig, predictor) -> None:
    """Run the app with uvicorn until stopped; the `serve` extra's absence is one message, not a traceback."""
    import sys

    try:
        import uvicorn

        from .app import create_app
    except ImportError as error:
        raise ViperError(f"viper serve needs its extra: pip install \"viper-emotion[serve]\" ({error})") from None
    print(f"viper serve: http://{config.host}:{config.port}/ (jobs in {config.state})", file=sys.stderr)
    uvicorn.run(create_app(config, predictor), host=config.host, port=config.port, log_level="warning")
