"""Readers: one module per source family, each returning canonical records.

* :mod:`.chatbot_arena` -- Chatbot Arena human battles (55k schema; local file or the Hub)
* :mod:`.judge_battles` -- the paper's GPT-4-judge battles (1-5 score of the weak answer)
* :mod:`.alpaca_eval` -- AlpacaEval annotations (raw and pooled), fractional preferences as weights
* :mod:`.fastchat` -- MT-Bench / arena-bench questions and single-answer 1-10 grades
* :mod:`.correctness` -- RouterBench CSVs and RouterDC / LLMRouter ``scores`` JSON files
* ``routellm_evals`` -- the RouteLLM MMLU / GSM8K evaluation CSVs (separate module)

Every reader validates its schema and raises :class:`SourceFormatError` (or
:class:`~routellm_jax.data.model_names.UnknownModelError` for a model name) naming file, row and
field; ``skip_bad_rows=True`` drops bad rows instead, counting them in a :class:`ReadReport` and
logging a warning. Import the reader modules directly; nothing is loaded at import time.
"""

from routellm_jax.data.sources._common import ReadReport, SourceFormatError, SourceUnavailableError

__all__ = ["ReadReport", "SourceFormatError", "SourceUnavailableError"]
