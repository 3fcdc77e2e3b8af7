"""Chat templates: render a checkpoint's own Jinja template the way transformers does."""

from __future__ import annotations

import datetime
import functools
import json

from azr_jax.errors import UserError

# Used when a checkpoint ships no template (and by the tiny tokenizer): plain ChatML.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _raise_exception(message):
    raise UserError(f"chat template error: {message}")


def _tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


@functools.lru_cache(maxsize=16)
def compile_template(source: str):
    """A compiled template in the same sandboxed environment settings transformers uses."""
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.datetime.now().strftime(fmt)
    try:
        return env.from_string(source)
    except jinja2.TemplateSyntaxError as e:
        raise UserError(f"chat template does not parse: {e}") from None


def render(source: str, messages, add_generation_prompt: bool = True, **variables) -> str:
    """Render `messages` ([{"role", "content"}, ...]) with template `source`."""
    for m in messages:
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise UserError(f"chat message {m!r} must be a dict with 'role' and 'content'")
    return compile_template(source).render(messages=list(messages),
                                           add_generation_prompt=add_generation_prompt,
                                           **variables)
