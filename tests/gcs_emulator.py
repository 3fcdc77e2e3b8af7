"""A Google Cloud Storage emulator on localhost for the gs:// workdir tests (`gcs` fixture).

gcp-storage-emulator (pure Python, requirements-dev.txt) serves the GCS JSON API from
memory (with GCS's generation headers and preconditions added: gcs_emulator_server.py). Every library that writes a workdir is pointed at it by its own setting, in the
environment, so the trainer's subprocesses inherit it:

- gcsfs (etils.epath's gs:// backend: config, logs, report, Orbax's metadata):
  STORAGE_EMULATOR_HOST, token "anon" (fsspec's FSSPEC_GCS_TOKEN), and
  GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false: its default file system first asks the bucket's
  type over gRPC (storage control API), which the emulator does not serve.
- google-cloud-storage (tensorboardX's gs:// event writer): STORAGE_EMULATOR_HOST, which
  also makes it use anonymous credentials; GOOGLE_CLOUD_PROJECT spares a project lookup.
- tensorstore (Orbax's array writer): TENSORSTORE_GCS_HTTP_URL (documented in tensorstore's
  environment variables), and GOOGLE_AUTH_TOKEN_FOR_TESTING, its fixed-token hook, so it
  looks for no credentials.
- the metadata-server settings of google-auth point at a closed local port: nothing asks a
  credentials service off this machine.
"""

import importlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest

BUCKET = "bucket"


def emulator_env(url: str) -> dict:
    closed = "127.0.0.1:1"  # nothing listens there: metadata lookups fail at once
    return {"STORAGE_EMULATOR_HOST": url, "FSSPEC_GCS_TOKEN": "anon",
            "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false", "TENSORSTORE_GCS_HTTP_URL": url,
            "GOOGLE_AUTH_TOKEN_FOR_TESTING": "emulator", "GOOGLE_CLOUD_PROJECT": "azr-test",
            "GCE_METADATA_HOST": closed, "GCE_METADATA_ROOT": closed, "GCE_METADATA_IP": closed,
            "NO_GCE_CHECK": "true"}


class Emulator:
    def __init__(self, url: str):
        self.url = url

    def path(self, name: str) -> str:
        """A fresh gs:// location in the emulator's bucket."""
        return f"gs://{BUCKET}/{name}-{uuid.uuid4().hex[:8]}"

    def fs(self):
        import gcsfs.core

        return gcsfs.core.GCSFileSystem(token="anon", endpoint_url=self.url)

    @staticmethod
    def forget_listings():
        """New gcsfs instances for this process: each caches the listings it made, and
        another process (the trainer) has written since."""
        import gcsfs.core
        from etils.epath import backend

        gcsfs.core.GCSFileSystem.clear_instance_cache()
        backend.fsspec_backend._get_filesystem.cache_clear()  # epath keeps one per protocol


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(log_path):
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(log_path, "w")
    server = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gcs_emulator_server.py")
    proc = subprocess.Popen([sys.executable, server, str(port), BUCKET], stdout=log,
                            stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while time.time() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url + "/", timeout=1) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    proc.wait()
    with open(log_path) as f:
        pytest.skip(f"the GCS emulator (gcp-storage-emulator) did not start: {f.read()[-500:]}")


@pytest.fixture(scope="module")
def gcs(tmp_path_factory):
    """The emulator, started for this module and stopped after it; this process and its
    children reach it through `emulator_env`."""
    pytest.importorskip("gcsfs", reason="gcsfs is not installed (requirements-gcs.txt)")
    pytest.importorskip("gcp_storage_emulator",
                        reason="gcp-storage-emulator is not installed (requirements-dev.txt)")
    import fsspec.config
    import gcsfs.core

    proc, url = _start(tmp_path_factory.mktemp("gcs") / "emulator.log")
    mp = pytest.MonkeyPatch()
    for key, value in emulator_env(url).items():
        mp.setenv(key, value)
    mp.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    # this process read fsspec's and gcsfs's environment at import: set the same here
    mp.setitem(fsspec.config.conf, "gcs", {**fsspec.config.conf.get("gcs", {}), "token": "anon"})
    registry = importlib.import_module("fsspec.registry")  # `fsspec.registry` is a mapping
    for name in ("gcs", "gs"):
        mp.setitem(registry._registry, name, gcsfs.core.GCSFileSystem)
    Emulator.forget_listings()
    try:
        yield Emulator(url)
    finally:
        Emulator.forget_listings()
        mp.undo()
        proc.terminate()
        proc.wait(timeout=30)
