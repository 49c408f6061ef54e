"""A fully local semantic search appliance."""

import os

# Nothing in this process may reach a model hub: set before any Hugging Face library is imported.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# onnxruntime's Linux wheels send 1DS telemetry (DNS lookups of mobile.events.data.microsoft.com,
# seen with strace) even after onnxruntime.disable_telemetry_events(); this variable, read when
# onnxruntime creates its environment, is what stops them.
os.environ["ORT_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

__version__ = "0.1.0"
