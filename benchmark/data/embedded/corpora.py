"""Unlabelled text: the four DAPT domain corpora (corpora/<domain>.txt, one document a line, the
`text` format), a general-text corpus (corpora/general.txt) and the documents the zoo's tiny encoders
are masked-LM pretrained on.

The domain corpora and the encoder documents are fresh draws from the task generators, never a text of
any embedded dev, validation or test item: a domain-adapted model must not have read the items it is
scored on (TAPT reads a task's own training text, which the lead's stage takes from the `<task>-train`
entry). The general text is everyday prose built from the lexicon, no task's format and no document equal
to any task text: the held-out text on which forgetting (a causal LM's loss before and after
fine-tuning, `eval.forgetting`) is measured, standing in for WikiText.
"""

from __future__ import annotations

from benchmark.data.embedded import dapt_tasks, glue_tasks, lexicon, squad_tasks
from benchmark.data.embedded.common import draw_unique, rng_for

DOCS_PER_DOMAIN = 3000
GENERAL_DOCS = 400  # forgetting reads the first 64; the rest leaves room for a larger sample
# encoder pretraining: fresh rows per GLUE task, per DAPT task, and SQuAD paragraphs (about 3,300 documents)
PRETRAIN_PER_GLUE, PRETRAIN_PER_DAPT, PRETRAIN_SQUAD = 250, 120, 200


def _dapt_texts(files: dict) -> set[str]:
    return {row["text"] for rel, rows in files.items() if rel.startswith("dapt/") for row in rows}


def _domain_documents(domain: str, seen: set[str]) -> list[str]:
    tasks, rng = dapt_tasks.DOMAINS[domain], rng_for(f"corpus:{domain}")

    def text() -> str:
        while True:
            candidate = dapt_tasks.sample_text(rng.choice(tasks), rng)
            if candidate not in seen:
                return candidate

    def document(_: int) -> dict:
        return {"text": " ".join(text() for _ in range(rng.randint(1, 3)))}

    return [d["text"] for d in draw_unique(document, DOCS_PER_DOMAIN, set(), key="text")]


def domain_corpora(files: dict) -> dict[str, list[str]]:
    """corpora/<domain>.txt -> documents: 1-3 texts of the domain's two tasks, labels dropped; no text
    of any generated DAPT item (a corpus repeats task text only as real domain text would: in other items)."""
    seen = _dapt_texts(files)
    return {f"corpora/{domain}.txt": _domain_documents(domain, seen) for domain in dapt_tasks.DOMAINS}


def _fresh_dapt(task: str, n: int, used: set[str]) -> list[str]:
    rng = rng_for(f"encoder-pretrain:dapt:{task}")
    return [row["text"] for row in draw_unique(lambda _: {"text": dapt_tasks.sample_text(task, rng)}, n, used, key="text")]


def encoder_documents(files: dict) -> list[str]:
    """Plain text of every GLUE, DAPT and SQuAD generator (a pair's two sentences joined by a space),
    fresh rows whose text is in no generated split (train included); fixed order."""
    docs: list[str] = []
    for task in glue_tasks.GLUE_TASKS:
        used = {glue_tasks.key(row) for rel, rows in files.items() if rel.startswith(f"glue/{task}/") for row in rows}
        docs += [" ".join(glue_tasks.texts(row)) for row in glue_tasks.fresh_rows(task, PRETRAIN_PER_GLUE, used, "encoder-pretrain")]
    used = _dapt_texts(files)
    for task in dapt_tasks.DAPT_TASKS:
        docs += _fresh_dapt(task, PRETRAIN_PER_DAPT, used)
    contexts = {p["context"] for rel, content in files.items() if rel.startswith("squad/")
                for article in content["data"] for p in article["paragraphs"]}
    docs += squad_tasks.fresh_contexts(PRETRAIN_SQUAD, contexts, "encoder-pretrain")
    rng_for("encoder-pretrain-order").shuffle(docs)
    return docs


def _general_sentence(rng) -> str:
    """One sentence of everyday prose about the lexicon's people, places, things and feelings."""
    name, job, city = rng.choice(lexicon.NAMES), rng.choice(lexicon.JOBS), rng.choice(lexicon.CITIES)
    category = rng.choice(sorted(lexicon.CATEGORIES))
    noun = rng.choice(lexicon.CATEGORIES[category][1])
    feeling, remedy = rng.choice(lexicon.FEELINGS)
    goal, tool = rng.choice(lexicon.TOOL_USES)
    day, place, color = rng.choice(lexicon.DAYS), rng.choice(lexicon.PLACES), rng.choice(lexicon.COLORS)
    templates = (
        f"{name} works as {lexicon.article(job)} {job} in {city}.",
        f"On {day.capitalize()} {name} walked to the {place} and met an old friend.",
        f"The {rng.choice(lexicon.ADJECTIVES)} {noun} {rng.choice(lexicon.CATEGORY_ACTIONS[category])}",
        f"{name} felt {feeling}, so the first thing to do was {remedy}.",
        f"{name} used the {tool} to {goal} before dinner.",
        f"There was {lexicon.article(color)} {color} {noun} near the {place} all morning.",
        f"Many people in {city} like to spend {day.capitalize()} at the {place}.",
    )
    return rng.choice(templates)


def _task_texts(files: dict) -> set[str]:
    """Every string field of every generated task row (the texts a held-out document must not repeat)."""
    texts = set()
    for content in files.values():
        if isinstance(content, list):
            for row in content:
                texts.update(v for v in (row.values() if isinstance(row, dict) else [row]) if isinstance(v, str))
    return texts


def general_corpus(files: dict) -> dict[str, list[str]]:
    """corpora/general.txt -> GENERAL_DOCS documents of 3-5 sentences; none equal to a text of any task file."""
    rng = rng_for("corpus:general")

    def document(_: int) -> dict:
        return {"text": " ".join(_general_sentence(rng) for _ in range(rng.randint(3, 5)))}

    docs = draw_unique(document, GENERAL_DOCS, _task_texts(files), key="text")
    return {"corpora/general.txt": [d["text"] for d in docs]}
