"""Short de-escalation hints for counter staff, in English and Simplified Chinese (overridable in config)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Keys: the alert reasons, plus "watch" (an early sustained sign) and "repeat" (a reminder: it keeps going), and the
# quieter cues "care" (a low, subdued customer) and "positive" (a pleased one). The staff tablet carries the same
# tables (edge/tablet/i18n.js, checked by a test) and renders the key in its own language.
# Drawn from customer-service practice: handle the emotion first, then the matter.
HINTS: dict[str, dict[str, str]] = {
    "en": {
        "watch": "Customer seems tense: listen without interrupting, then ask an open question: "
                 "\"How can I help you with this?\"",
        "rising": "Getting upset quickly: acknowledge the feeling first: \"I understand this is frustrating.\"",
        "sustained": "Acknowledge the feeling (\"I understand this is frustrating\"), restate what they need, "
                     "then offer concrete options and next steps.",
        "voice_agitation": "Raised voice: stay calm, speak slowly and let them finish; then restate their need "
                           "in your own words.",
        "repeat": "Still upset: call a supervisor and offer a concrete next step with a time.",
        "recovered": "The customer seems calmer: confirm the next steps.",
        "care": "Customer seems low: slow down and reassure: \"I can see this is difficult, let me help you step "
                "by step.\"",
        "positive": "Customer seems pleased: a good moment to confirm they have everything they need.",
    },
    "zh-CN": {
        "watch": "顾客似乎有些紧张：耐心倾听，不要打断，再问一个开放式问题：“有什么我可以帮您的？”",
        "rising": "顾客情绪上升较快：先回应情绪：“我理解您的心情。”",
        "sustained": "先回应情绪（“我理解您的心情”），复述顾客的需求，再提供具体的选择和下一步。",
        "voice_agitation": "顾客声音提高：保持冷静，放慢语速，让顾客说完，再用自己的话复述其需求。",
        "repeat": "顾客仍然不满：请联系主管，并给出具体的下一步和时间。",
        "recovered": "顾客情绪似乎已平复：请确认下一步安排。",
        "care": "顾客情绪似乎低落：放慢语速，给予安心：“我看得出这件事让您很为难，我一步一步帮您办。”",
        "positive": "顾客看起来很满意：正是确认是否还有其他需要的好时机。",
    },
}

LANGUAGES: tuple[str, ...] = tuple(HINTS)


def hint_key(level: str, reason: str, reminder: bool = False) -> str:
    """The hint key for an alert: its reason, ``watch`` for a sustained watch, ``repeat`` for a reminder."""
    if reminder:
        return "repeat"
    if level == "watch" and reason == "sustained":
        return "watch"
    return reason


def hint(key: str, lang: str, overrides: Mapping[Any, Mapping[Any, str]] | None = None) -> dict[str, Any]:
    """The ``{lang, text, key, custom}`` hint: the config override if any (``custom``), else the built-in text."""
    lang = lang if lang in HINTS else "en"
    custom = (overrides or {}).get(lang, {}).get(key)
    text = custom or HINTS[lang].get(key) or HINTS["en"][key]
    return {"lang": lang, "text": text, "key": key, "custom": bool(custom)}
