"""Reference renderings of shipped chat templates, made by transformers' own Jinja path.

Writes Tests/Fixtures/chat-templates/cases.json: each template's text (with where it was taken
from) and, for several conversations (with and without a system message, several turns, content as
a string and as a list of text/image/video parts) with the generation prompt on and off, the exact
string transformers renders — or, when transformers refuses the conversation, that it raised and
its message. ChatTemplateParityTests renders the same conversations with the Swift engine.

Rendering goes through transformers.utils.chat_template_utils.render_jinja_template, the function
both PreTrainedTokenizerBase.apply_chat_template and ProcessorMixin.apply_chat_template call (its
ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks, loopcontrols, AssistantTracker,
raise_exception, strftime_now and the JSON tojson), with bos/eos passed as the tokenizer does.

Run: python3 tools/make_chat_template_fixtures.py (with transformers installed)
(with .cache/models/SmolLM2-135M-Instruct*.gguf present — scripts/fetch-smollm2.sh — the SmolLM2
template is read from the GGUF's tokenizer.chat_template and checked against the literal below).
"""
import datetime
import glob
import json
import pathlib

import transformers
import transformers.utils.chat_template_utils as chat_template_utils
from transformers.utils.chat_template_utils import render_jinja_template

import make_lm_fixtures
import make_qwen_tokenizer
import make_tokenizer

root = pathlib.Path(__file__).resolve().parent.parent

# SmolLM2-135M-Instruct: tokenizer_config.json / the GGUF's tokenizer.chat_template (checked below).
SMOLLM2 = make_tokenizer.CHAT_TEMPLATE

# SmolVLM2-256M-Video-Instruct: the chat_template.json this repository's demo checkpoint copies
# (tools/make_lm_fixtures.py), which equals the video template transformers.js and older
# transformers ship for SmolVLM.
SMOLVLM2 = make_lm_fixtures.SMOLVLM_CHAT_TEMPLATE

# Qwen2.5-VL-*-Instruct chat_template.json (tools/make_qwen_tokenizer.py; the same text as
# Qwen2-VL-2B-Instruct's in openvino.genai's tokenizer fallback table).
QWEN25VL = make_qwen_tokenizer.CHAT_TEMPLATE

# llava-hf/llava-1.5-7b-hf and llava-hf/llava-v1.6-vicuna-7b-hf chat_template.json (one text for
# both: openvino.genai's tokenizer fallback table, "llava-1.5, llava-v1.6-vicuna (chat_template.json)").
LLAVA_VICUNA = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}"
    "{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}{# Render all text next #}{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}{% endfor %}"
    "{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{% generation %}"
    "{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

# llava-hf/llava-v1.6-mistral-7b-hf chat_template.json (openvino.genai's fallback table,
# "tiny-random-llava-next, llava-v1.6-mistral (chat_template.json)"); '<\\s>' is in the original.
LLAVA_MISTRAL = (
    "{% for message in messages %}{% if message['role'] == 'system' %}"
    "{{ '<<SYS>>\n' + message['content'][0]['text'] + '\n<</SYS>>\n\n' }}{% elif message['role'] == 'user' %}"
    "{{ '[INST] ' }}{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}{# Render all text next #}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] }}{% endfor %}"
    "{{' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'][0]['text'] + '<\\\\s> '}}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)

# LLaVA-NeXT-Video: llava-hf/LLaVA-NeXT-Video-7B-hf's own file was not found verbatim. These two are
# real transformers texts: `chat_vicuna` of convert_llava_next_video_weights_to_hf.py (the template
# its conversion attaches to lmms-lab/LLaVA-NeXT-Video-7B), and the template of
# tests/models/llava_next_video/test_processing_llava_next_video.py.
LLAVA_NEXT_VIDEO_CONVERT = (
    "{% for message in messages %}{% if message['role'] == 'system' %}{{ message['content'][0]['text'] }}{% else %}"
    "{{ message['role'].upper() + ': '}}{% endif %}{# Render all images first #}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{# Render all text next #}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' '}}{% endfor %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)
LLAVA_NEXT_VIDEO_TEST = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + ' '}}{# Render all images first #}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>' }}{% endfor %}"
    "{# Render all video then #}{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}"
    "{{ '<video>' }}{% endfor %}{# Render all text next #}{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ '\n' + content['text'] }}{% endfor %}"
    "{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{% generation %}"
    "{{ '\n' + content['text'] }}{% endgeneration %}{% endfor %}{% endif %}{{'<|im_end|>'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Whitespace control, loop variables, slicing, methods, filters and tests in one template of our
# own (not shipped), so the engine's jinja2 semantics are checked beyond what the shipped ones use.
ENGINE_PROBE = """{%- set ns = namespace(n=0, roles=[]) -%}
{%- if messages[0]['role'] == 'system' -%}
    {%- set system = messages[0]['content'] | trim -%}
    {%- set rest = messages[1:] -%}
{%- else -%}
    {%- set system = none -%}
    {%- set rest = messages -%}
{%- endif %}
{{ bos_token }}{% if system is not none %}[SYS {{ system | upper }}]{% endif %}
{% for m in rest %}
  {%- set ns.n = ns.n + 1 -%}
  {{ loop.index }}/{{ loop.length }}{{ '(first)' if loop.first }}{{ '(last)' if loop.last else '' }} {{ m.role | capitalize }}:
  {%- if m.content is string %} {{ m.content.strip() ~ '|' ~ m.content.split(' ')[0] ~ '|' ~ m['content'][::-1] }}
  {%- else %}
    {%- for p in m.content if p.type != 'image' %} <{{ p.type }}{{ ('=' + p.text | tojson) if p.text is defined }}>{% endfor %}
    {%- set images = m.content | selectattr('type', 'equalto', 'image') | list %} images={{ images | length }}
  {%- endif %}
  {%- if m.role == 'assistant' and m.content is string and m.content.startswith('Sure') %} (polite){% endif %}
  {#- a comment -#}
{% endfor %}
{{- 'turns=' ~ ns.n ~ ' ' ~ (rest | map(attribute='role') | join(',')) ~ ' ' ~ ({'a': 1, 'b': [true, none, 2.5]} | tojson) }}
{% if add_generation_prompt %}{{ eos_token | default('?') }}<assistant>{% endif %}
"""

# Small templates, each rendered for the "turns" conversation with the generation prompt on: jinja2's
# whitespace rules and Python value semantics one at a time.
SNIPPETS = [
    # trim_blocks / lstrip_blocks / `-` / `+` / comments / the template's trailing newline
    "{% if true %}\n    a\n    {% endif %}\nb",
    "x  \n {{- 'y' -}} \n z",
    "  {%+ if true +%}\nq{% endif %}",
    "a\n  {# note #}\nb\n",
    "{{ 'a' }}\n{{ 'b' }}\n\n",
    "{% for m in messages %}\n  {{ m.role }}\n{% endfor %}\n",
    "{%- for m in messages -%}\n  [{{ m.role }}]\n{%- endfor %}\n end",
    "a {#- c -#} b {#+ c +#}\n c",
    "\t{% if true %}x{% endif %}  {% if true %}y{% endif %}",
    # values: repr, arithmetic, strings, slicing, dicts, loops, scoping, defaults, json
    "{{ [1, 'a', none, true, 2.5, 1e20, -0.0, \"it's\"] }}|{{ {'k': [1, {'j': none}]} }}",
    "{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 3 * 'ab' }} {{ 1 + 2.5 }} {{ 10 / 4 * 2 }}",
    "{{ messages[2].content.strip().split(' ') | tojson }}{{ messages[2]['content'].split() }}{{ 'a,b,,c'.split(',', 2) }}",
    "{{ 'abcdef'[1:5:2] }}{{ [1,2,3][-1] }}{{ 'x' in 'axb' }}{{ 2 not in [1] }}{{ messages[::-1] | map(attribute='role') | join('>') }}",
    "{{ {'k': 'v'}.get('k') }}{{ {'k': 'v'}.get('z', 'd') }}{{ {'k': 'v'}.get('z') }}{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}",
    "{% for i in range(6) %}{% if i == 4 %}{% break %}{% endif %}{% if i == 1 %}{% continue %}{% endif %}{{ i }}{{ loop.revindex }}{% endfor %}",
    "{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{{ x }}{% endfor %}{{ x }}{% set ns = namespace(x=1) %}{% for i in [1, 2] %}{% set ns.x = ns.x * 10 %}{% endfor %}{{ ns.x }}",
    "{{ missing | default('d') }}{{ '' | default('e', true) }}{{ missing is defined }}{{ none is none }}{{ 3 is number }}{{ 'a' is string }}{{ {} is mapping }}{{ [] is iterable }}{{ 4 is divisibleby 2 }}",
    "{{ {'a': [1, {'b': 'ü \\\" \\n'}], 'c': 1.5} | tojson(indent=2) }}|{{ messages[0] | tojson }}|{{ {'z': 1, 'a': 2} | tojson(sort_keys=true) }}",
    "{{ 'hello WORLD' | title }} {{ 'hello WORLD' | capitalize }} {{ 'Hi' | upper }}{{ 'Hi' | lower }} {{ '  pad  ' | trim }}| {{ 'aXbXc' | replace('X', '-') }} {{ 'abc' | length }} {{ '42' | int + 1 }} {{ 4.7 | int }} {{ [3, 1, 2] | sort | first }}{{ [3, 1, 2] | last }}",
    "{{ messages | selectattr('role', 'equalto', 'user') | list | length }}{{ messages | rejectattr('role', 'eq', 'user') | map(attribute='role') | join(',') }}{{ [1, 2, 3, 4] | select('odd') | list }}{{ [0, 1, ''] | reject | list }}",
    "{{ 'yes' if messages | length > 3 else 'no' }}{{ ('a' ~ 1 ~ none ~ true) }}{{ 'a' < 'b' }}{{ 2 >= 2.0 }}{{ not messages }}{{ messages and 'ok' }}{{ none or 'fallback' }}",
    "{% set block %}{{ messages[0].role | upper }}!{% endset %}{{ block }}{{ block | length }}{% if messages[1].content.startswith(('Wh', 'X')) and messages[1].content.endswith('?') %}Q{% endif %}",
    "{% for m in messages if m.role != 'system' %}{{ loop.index0 }}{{ m.role[0] }}{% if loop.first %}F{% elif loop.last %}L{% else %}M{% endif %}{% else %}none{% endfor %}{% for x in [] %}{% else %}empty{% endfor %}",
    "{{ strftime_now('%Y-%m-%d') | length }}{{ strftime_now('%d %b %Y').split(' ') | length }}{{ dict(a=1, b='x') | tojson }}{{ raise_exception is defined }}",
    "{{ 2 ** -1 }} {{ (-2) ** 3 }} {{ 1 ** 99999999999 }} {{ 'ab' * 0 }}{{ [1, 'x'] * 2 }}{{ 2 * [none] }}",
    "{% macro tag(name, body='-', close=true) %}<{{ name }}>{{ body }}{% if close %}</{{ name }}>{% endif %}{% endmacro %}{% for m in messages %}{{ tag(m.role, body=m.content[:3]) }}{% endfor %}{{ tag('x') }}{{ tag('y', 'z', false) }}",
    "{{ messages[1:] | length }} {{ messages[-1]['content'][-5:] }} {{ messages[0].content | trim if false else 'skip' }}{{ messages[5] is defined }}",
]

# More shipped templates (text models), to exercise the engine on what the Hub ships: the chat
# templates huggingface/swift-jinja's Tests/Templates/ChatTemplateTests.swift and ChatTemplates.swift
# record (the files as of its v2 import: Llama 3.1/3.2, Qwen2.5/3/3-Coder, Granite 3.3, SmolLM3,
# Mistral, Gemma, Phi-4 …), extracted verbatim into tools/hub_chat_templates.json, keyed by their
# test or constant names.
HUB_TEMPLATES = json.loads((root / "tools/hub_chat_templates.json").read_text())

# Passed to every rendering (as apply_chat_template's extra kwargs): Llama 3.x templates print
# today's date unless given one.
VARIABLES = {"date_string": "26 Jul 2024"}

# The instant strftime_now() formats (SmolLM3's template prints today's date with it): pinned, so the
# fixture does not go stale the next day; written to the fixture as local time, which the Swift test
# passes to ChatTemplate.render(now:).
NOW = datetime.datetime(2024, 7, 26, 12, 0, 0)


class PinnedClock(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return NOW


# transformers' strftime_now calls the module's datetime.now() at render time.
chat_template_utils.datetime = PinnedClock
TEMPLATES = {
    "smollm2": SMOLLM2,
    "smolvlm2": SMOLVLM2,
    "smolvlm-processor-video": transformers.models.smolvlm.processing_smolvlm.DEFAULT_CHAT_TEMPLATE,
    "qwen25vl": QWEN25VL,
    "llava-1.5": LLAVA_VICUNA,
    "llava-v1.6-vicuna": LLAVA_VICUNA,
    "llava-v1.6-mistral": LLAVA_MISTRAL,
    "llava-next-video-convert-vicuna": LLAVA_NEXT_VIDEO_CONVERT,
    "llava-next-video-processor-test": LLAVA_NEXT_VIDEO_TEST,
    "engine-probe": ENGINE_PROBE,
    **{f"hub/{name}": text for name, text in HUB_TEMPLATES.items()},
}


def text(t):
    return {"type": "text", "text": t}


CONVERSATIONS = {
    "user": [{"role": "user", "content": "Hi there!"}],
    "system-user": [{"role": "system", "content": "  Be brief.  "}, {"role": "user", "content": "Hi there!"}],
    "turns": [
        {"role": "system", "content": "You answer about videos."},
        {"role": "user", "content": "What is in the clip?"},
        {"role": "assistant", "content": "Sure: a dog.\nIt runs."},
        {"role": "user", "content": "And then?"},
    ],
    "turns-no-system": [
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi! How can I help?"},
        {"role": "user", "content": "Tell me a joke ü \"quoted\""},
    ],
    "image-parts": [{"role": "user", "content": [{"type": "image"}, text("What is shown?")]}],
    "video-parts": [{"role": "user", "content": [{"type": "video"}, text("Why is this video funny?")]}],
    "parts-turns": [
        {"role": "system", "content": [text("A careful assistant.")]},
        {"role": "user", "content": [{"type": "image"}, {"type": "image"}, text("Compare them.")]},
        {"role": "assistant", "content": [text("The first is darker.")]},
        {"role": "user", "content": [{"type": "video"}, text("And this?"), text("Be short.")]},
    ],
    "parts-turns-no-system": [
        {"role": "user", "content": [text("Describe:"), {"type": "image"}]},
        {"role": "assistant", "content": [text("A cat.")]},
        {"role": "user", "content": [{"type": "video"}, text("Same cat?")]},
    ],
}


def smollm2_from_gguf():
    paths = sorted(glob.glob(str(root / ".cache/models/SmolLM2-135M-Instruct*.gguf")))
    if not paths:
        print("note: no SmolLM2 GGUF in .cache/models; the SmolLM2 literal is not re-checked")
        return
    import gguf

    reader = gguf.GGUFReader(paths[0])
    field = reader.fields["tokenizer.chat_template"]
    shipped = bytes(field.parts[field.data[0]]).decode("utf-8")
    assert shipped == SMOLLM2, f"{paths[0]}: tokenizer.chat_template differs from the literal:\n{shipped!r}"
    print(f"checked: {pathlib.Path(paths[0]).name} tokenizer.chat_template == SMOLLM2")


def main():
    smollm2_from_gguf()
    cases = []
    for name, template in TEMPLATES.items():
        for conversation, messages in CONVERSATIONS.items():
            for generation in (True, False):
                case = {"template": name, "conversation": conversation, "add_generation_prompt": generation}
                try:
                    rendered, _ = render_jinja_template(
                        conversations=[messages], chat_template=template, add_generation_prompt=generation,
                        bos_token="<s>", eos_token="</s>", **VARIABLES)
                    case["expected"] = rendered[0]
                except Exception as e:  # the template refuses the conversation: our engine must refuse too
                    case["error"] = f"{type(e).__name__}: {e}"
                cases.append(case)
    snippets = []
    for template in SNIPPETS:
        rendered, _ = render_jinja_template(conversations=[CONVERSATIONS["turns"]], chat_template=template,
                                            add_generation_prompt=True, bos_token="<s>", eos_token="</s>", **VARIABLES)
        snippets.append({"template": template, "expected": rendered[0]})
    out = root / "Tests/Fixtures/chat-templates/cases.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"transformers": transformers.__version__, "bos_token": "<s>", "eos_token": "</s>",
               "variables": VARIABLES, "now": NOW.isoformat(), "templates": TEMPLATES, "conversations": CONVERSATIONS, "cases": cases,
               "snippets": snippets}
    out.write_text(json.dumps(payload, ensure_ascii=False, indent=1) + "\n")
    errors = sum("error" in c for c in cases)
    print(f"wrote {out} ({out.stat().st_size} bytes, {len(cases)} cases, {errors} refused)")


if __name__ == "__main__":
    main()
