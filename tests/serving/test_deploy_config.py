"""deploy/'s Serve configs parse with Serve's own schema and name a builder and args that exist."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def configs():
    yield "serve-config.yaml", yaml.safe_load((ROOT / "deploy/serve-config.yaml").read_text())
    service = yaml.safe_load((ROOT / "deploy/kuberay/rayservice.yaml").read_text())
    yield "rayservice.yaml", yaml.safe_load(service["spec"]["serveConfigV2"])


@pytest.mark.parametrize("name, config", list(configs()), ids=lambda x: x if isinstance(x, str) else "")
def test_serve_config_is_valid(name, config):
    from ray.serve.schema import ServeDeploySchema
    from ray._common.utils import import_attr

    from photoseek.serving.app import AppArgs
    from photoseek.serving.protos import SERVICER

    schema = ServeDeploySchema.model_validate(config) if hasattr(ServeDeploySchema, "model_validate") \
        else ServeDeploySchema.parse_obj(config)
    app = schema.applications[0]
    assert import_attr(app.import_path).__name__ == "build_app"
    AppArgs(**app.args)  # every key is a real setting
    assert config["grpc_options"]["grpc_servicer_functions"] == [SERVICER]
    assert callable(import_attr(SERVICER))
