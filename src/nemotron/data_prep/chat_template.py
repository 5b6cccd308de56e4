"""Render chats with a tokenizer's own Jinja chat template, exactly as transformers' ``apply_chat_template``.

Why not call transformers: data prep runs in many worker processes on CPU nodes, and loading a full
``PreTrainedTokenizer`` per worker costs seconds and pulls torch-sized imports. The template itself is
the contract, so it is rendered here with the same environment transformers builds
(transformers 5.x ``utils/chat_template_utils.py``: a sandboxed ``ImmutableSandboxedEnvironment`` with
``trim_blocks``/``lstrip_blocks`` and ``loopcontrols``, a ``tojson`` filter that does not HTML-escape,
``raise_exception``, ``strftime_now``) and the same inputs (messages with ``None`` values dropped,
``reasoning_content`` also offered as ``thinking``, ``tools``, the named special tokens of
``tokenizer_config.json``, and the caller's extra kwargs such as ``enable_thinking``). The tests check
the token ids against transformers for every template shape we support.

The compiled template is cached per process (``compiled``): a worker compiles it once.
"""

from __future__ import annotations

import functools
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from nemotron.errors import UserError

TEMPLATE_FILE = "chat_template.jinja"  # where transformers >= 4.43 saves a tokenizer's template
TOKENIZER_CONFIG = "tokenizer_config.json"
# The named special tokens transformers passes to every template (PreTrainedTokenizerBase.SPECIAL_TOKENS_ATTRIBUTES).
SPECIAL_TOKEN_KEYS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
REASONING_ALIASES = ("reasoning_content", "thinking", "reasoning")


class TemplateRenderError(ValueError):
    """The template raised (``raise_exception``, a bad field) for one conversation."""


def _tokenizer_dir(tokenizer_path: str | Path) -> Path:
    path = Path(tokenizer_path)
    return path if path.is_dir() else path.parent


def _config(directory: Path) -> dict[str, Any]:
    path = directory / TOKENIZER_CONFIG
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path}: {exc}", hint="fix or remove the file") from None
    return data if isinstance(data, dict) else {}


def find_template(tokenizer_path: str | Path, setting: str) -> tuple[str, str]:
    """``(source, template text)`` for ``tokenizer.chat_template``.

    ``auto``: ``chat_template.jinja`` in the tokenizer's directory, else the ``chat_template`` of its
    ``tokenizer_config.json`` (a string, or transformers' list of named templates: ``default``).
    Anything else is a path to a Jinja file.
    """
    if setting != "auto":
        from nemotron.data_prep.sources import resolve_user_path

        path = resolve_user_path(setting)
        if not path.is_file():
            raise UserError(
                f"chat template file not found: {path}",
                hint="set tokenizer.chat_template to auto, per_turn or a .jinja file",
            )
        return str(path), path.read_text(encoding="utf-8")
    directory = _tokenizer_dir(tokenizer_path)
    jinja_file = directory / TEMPLATE_FILE
    if jinja_file.is_file():
        return str(jinja_file), jinja_file.read_text(encoding="utf-8")
    template = _config(directory).get("chat_template")
    if isinstance(template, list):
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    if isinstance(template, str) and template.strip():
        return f"{directory / TOKENIZER_CONFIG}:chat_template", template
    raise UserError(
        f"no chat template next to the tokenizer in {directory} ({TEMPLATE_FILE} or chat_template in {TOKENIZER_CONFIG})",
        hint="point tokenizer.path at the model directory, set tokenizer.chat_template to a .jinja file, "
        "or tokenizer.chat_template=per_turn for the plain ChatML fallback",
    )


def special_tokens(tokenizer_path: str | Path) -> dict[str, str]:
    """The named special tokens of ``tokenizer_config.json`` as transformers passes them (strings)."""
    config = _config(_tokenizer_dir(tokenizer_path))
    out: dict[str, str] = {}
    for key in SPECIAL_TOKEN_KEYS:
        value = config.get(key)
        if isinstance(value, dict):
            value = value.get("content")
        if isinstance(value, str):
            out[key] = value
    return out


@functools.lru_cache(maxsize=8)
def compiled(template: str) -> Any:
    """The template compiled in transformers' sandboxed environment, once per process and template."""
    import jinja2
    import jinja2.ext
    import jinja2.utils
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None, sort_keys: bool = False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt: str) -> str:
        return datetime.now().strftime(fmt)

    class Namespace(jinja2.utils.Namespace):
        """Rejects underscore names, as transformers' template namespace does."""

        def __init__(*args: Any, **kwargs: Any) -> None:
            self, rest = args[0], args[1:]
            attrs = dict(*rest, **kwargs)
            for name in attrs:
                Namespace._check(name)
            jinja2.utils.Namespace.__init__(self, attrs)

        def __setitem__(self, name: str, value: Any) -> None:
            Namespace._check(name)
            jinja2.utils.Namespace.__setitem__(self, name, value)

        @staticmethod
        def _check(name: Any) -> None:
            if isinstance(name, str) and name.startswith("_"):
                raise jinja2.exceptions.SecurityError(f"chat templates cannot store {name!r} on a namespace")

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    env.globals["dict"] = dict
    env.globals["namespace"] = Namespace
    try:
        return env.from_string(template)
    except jinja2.exceptions.TemplateSyntaxError as exc:
        raise UserError(
            f"the chat template does not compile: {exc.message} (line {exc.lineno})",
            hint="fix the template, or set tokenizer.chat_template to another .jinja file",
        ) from None


def template_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages as transformers hands them to the template: ``None`` values dropped, reasoning aliased."""
    out = []
    for message in messages:
        message = {k: v for k, v in message.items() if v is not None}
        reasoning = next((message[k] for k in REASONING_ALIASES if message.get(k) is not None), None)
        if reasoning is not None:
            message = {"thinking": reasoning, **message, "reasoning_content": reasoning}
        out.append(message)
    return out


class ChatRenderer:
    """One tokenizer's chat template plus the special tokens it sees; ``render`` is apply_chat_template(tokenize=False)."""

    def __init__(self, template: str, specials: dict[str, str]) -> None:
        self.template = template
        self.specials = dict(specials)
        self._compiled = compiled(template)

    @classmethod
    def for_tokenizer(cls, tokenizer_path: str | Path, setting: str = "auto") -> ChatRenderer:
        _, text = find_template(tokenizer_path, setting)
        return cls(text, special_tokens(tokenizer_path))

    def render(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[Any] | None = None,
        add_generation_prompt: bool = False,
        kwargs: dict[str, Any] | None = None,
    ) -> str:
        """The rendered text; raises ``TemplateRenderError`` with the template's own message."""
        import jinja2

        variables = {**self.specials, **(kwargs or {})}
        try:
            return self._compiled.render(
                messages=template_messages(messages),
                tools=tools,
                documents=None,
                add_generation_prompt=add_generation_prompt,
                **variables,
            )
        except (jinja2.exceptions.TemplateError, TypeError, ValueError, KeyError, AttributeError) as exc:
            raise TemplateRenderError(str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__) from None
