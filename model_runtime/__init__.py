"""Draft chest X-ray reports with CheXOne: prompts, image preprocessing, output parsing, backends and batch pre-generation."""

from model_runtime.backends import (
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
    register_backend,
    request_key,
    unpinned_revision_warning,
)
from model_runtime.batch import BatchSummary, generate_batch, run_batch
from model_runtime.consistency import consistency_score
from model_runtime.parsing import ParsedOutput, clean_report_text, extract_choice, normalise_report_text, parse_output
from model_runtime.preprocess import PreparedImage, prepare_image, smart_resize
from model_runtime.prompts import (
    REASONING_SUFFIX,
    SYSTEM_PROMPT,
    PromptTemplate,
    available_templates,
    get_template,
    register_template,
)
from model_runtime.serving import DeterminismReport, determinism_check, serve_command

__all__ = [
    "DEFAULT_MODEL_ID", "DEFAULT_MODEL_REVISION", "REASONING_SUFFIX", "SYSTEM_PROMPT",
    "Backend", "BackendUnavailable", "BatchSummary", "DeterminismReport", "DraftRequest", "DraftResult",
    "DraftingError", "ParsedOutput", "PreparedImage", "PromptTemplate", "SamplingParams",
    "available_backends", "available_templates", "build_request", "clean_report_text", "consistency_score",
    "determinism_check", "extract_choice", "generate_batch", "get_backend", "get_template", "input_hash", "is_pinned_revision",
    "normalise_report_text",
    "parse_output", "prepare_image", "register_backend", "register_template", "request_key", "unpinned_revision_warning", "run_batch",
    "serve_command", "smart_resize",
]
