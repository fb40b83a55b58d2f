"""CTF in its own setting at a profile's scale (docs/ctf.md): LlamaGen's tokenizer family and GPT shapes, run by the
same rules as the profile's own AliTok runs.

A profile's `ctf_setting` section overrides its params (a deep merge, like `base`). The result is an ordinary params
dict named `<profile>/ctf_setting`: every `alitok` command runs it unchanged, its files live under
results/<profile>/ctf_setting/ in the main layout, and it reads the profile's data, classifier, perceptual net and
real-image evaluation, whose params the section cannot name (the schema allows tokenizer, tokens, generator, ctf and
resources only), so the profile's context (real-image floor, classifier ceiling) holds for it too.
"""

from __future__ import annotations

from alitok import config
from alitok.config import ParamsError

NAME = "ctf_setting"


def derive(p: dict) -> dict:
    """The params of the profile's CTF setting: the profile (without its ablations) with the section merged in."""
    if NAME not in p:
        raise ParamsError(f"params profile '{p['name']}' has no {NAME} section")
    body = {k: v for k, v in p.items() if k not in (NAME, "ablations", "name")}
    q = config.deep_merge(body, p[NAME])
    q["name"], q["setting"] = p["name"], NAME
    return q
