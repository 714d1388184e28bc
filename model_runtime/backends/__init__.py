"""Model backends behind one protocol and one registry: vLLM server, vLLM offline, transformers, replay."""

from model_runtime.backends.base import (
    DEFAULT_MODEL_ID,
    DEFAULT_MODEL_REVISION,
    Backend,
    BackendUnavailable,
    DraftingError,
    DraftRequest,
    DraftResult,
    SamplingParams,
    available_backends,
    build_request,
    get_backend,
    input_hash,
    is_pinned_revision,
    make_result,
    register_backend,
    request_key,
    unpinned_revision_warning,
)

# Importing the modules registers the backends; none imports a GPU package at import time.
from model_runtime.backends import hf_transformers, replay, vllm_offline, vllm_server  # noqa: E402,F401
from model_runtime.backends.hf_transformers import TransformersBackend  # noqa: E402
from model_runtime.backends.replay import ReplayBackend  # noqa: E402
from model_runtime.backends.vllm_offline import VLLMOfflineBackend  # noqa: E402
from model_runtime.backends.vllm_server import VLLMServerBackend  # noqa: E402

__all__ = [
    "DEFAULT_MODEL_ID", "DEFAULT_MODEL_REVISION", "Backend", "BackendUnavailable", "DraftingError",
    "DraftRequest", "DraftResult", "ReplayBackend", "SamplingParams", "TransformersBackend",
    "VLLMOfflineBackend", "VLLMServerBackend", "available_backends", "build_request", "get_backend",
    "input_hash", "is_pinned_revision", "make_result", "register_backend", "request_key", "unpinned_revision_warning",
]
