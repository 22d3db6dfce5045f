"""The eight GLUE tasks as GLUE-style jsonl: the HF nyu-mll/glue field names, label conventions and
split names (MNLI's are validation_matched / test_matched), test labels hidden as -1.

Every label is decidable from words of the text (a cue word, or for CoLA a local word order a bigram
sees), so a tiny 2-layer encoder learns it in a few hundred steps. Pair tasks put the cue in one
sentence rather than in a match between the two: a cross-sentence comparison is what a small model
learns last (lexicon.py). Each task has cues of its own, so no two tasks are the same task renamed.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from benchmark.data.embedded.common import balanced_positions, draw_unique, rng_for
from benchmark.data.embedded.lexicon import ADJECTIVES, CATEGORIES, CITIES, DAYS, NAMES, PLACES, article

SPLIT_SIZES = {"train": 2400, "validation": 200, "test": 100}  # the low-resource protocol draws K=1000 + 1000 from train
NOUNS = tuple(n for _, members, _ in CATEGORIES.values() for n in members)
CATEGORY_OF = {n: label for label, (_, members, _) in CATEGORIES.items() for n in members}

# ---- CoLA: acceptable (1) or not (0); the fault is a local word order or an agreement a bigram sees ----
PAST = {"saw": "seen", "liked": "liked", "found": "found", "washed": "washed", "moved": "moved",
        "painted": "painted", "sold": "sold", "kept": "kept"}
PLURAL_OK = tuple(n for n in NOUNS if not n.endswith(("s", "sh", "ch", "x", "y")) and n not in ("mouse", "sheep", "knife"))


def cola(rng: random.Random, label: int) -> dict:
    name, verb, adj, place = rng.choice(NAMES), rng.choice(tuple(PAST)), rng.choice(ADJECTIVES), rng.choice(PLACES)
    noun = rng.choice(PLURAL_OK)
    if label == 1:
        words = rng.choice(([name, verb, "the", adj, noun, "in", "the", place],
                            ["the", adj, noun, "was", PAST[verb], "by", name],
                            ["the", adj, noun + "s", "were", PAST[verb], "by", name],
                            [name, "and", rng.choice(NAMES), verb, "the", noun, "on", rng.choice(DAYS)]))
    else:
        words = rng.choice(([verb, name, "the", adj, noun, "in", "the", place],  # verb before its subject
                            [name, verb, adj, "the", noun, "in", "the", place],  # determiner after the adjective
                            [name, verb, "the", noun, adj, "in", "the", place],  # adjective after the noun
                            ["the", adj, noun, "were", PAST[verb], "by", name],  # singular noun, plural verb
                            ["the", adj, noun + "s", "was", PAST[verb], "by", name]))  # plural noun, singular verb
    sentence = " ".join(words)
    return {"sentence": sentence[0].upper() + sentence[1:] + ".", "label": label}


# ---- SST-2: short phrase sentiment (1 positive); 1 in 6 has "X but Y", where Y's clause decides ----
SST_POS = ("great", "good", "fun", "lovely", "wonderful", "charming", "moving", "clever", "warm", "witty")
SST_NEG = ("bad", "dull", "boring", "awful", "weak", "terrible", "silly", "messy", "flat", "tedious")
SST_NOUNS = ("movie", "film", "story", "script", "plot", "acting", "cast", "score", "dialogue", "pacing")
SST_ADVERBS = ("", "really ", "quite ", "truly ", "rather ")


def _a(phrase: str) -> str:
    return f"{article(phrase)} {phrase}"


def sst2(rng: random.Random, label: int) -> dict:
    good, bad = (SST_POS, SST_NEG) if label == 1 else (SST_NEG, SST_POS)
    a, b = rng.sample(good, 2)
    n1, n2 = rng.sample(SST_NOUNS, 2)
    adv = rng.choice(SST_ADVERBS)
    if rng.random() < 1 / 6:
        sentence = f"the {n1} is {rng.choice(bad)} , but the {n2} is {adv}{a} "
    else:
        sentence = rng.choice((f"the {n1} is {adv}{a} ", f"{_a(adv + a)} and {b} {n1} ", f"{a} {n1} , {b} {n2} ",
                               f"i found the {n1} {adv}{a} ", f"{_a(adv + a)} {n1} with {_a(b)} {n2} "))
    return {"sentence": sentence, "label": label}


# ---- MRPC: sentence2 restates sentence1 (1) or reports something else about the same company (0) ----
COMPANIES = ("Acme Corp", "Nordex", "Velta Bank", "Orbis Media", "Kestrel Foods", "Halcyon Air", "Brightway",
             "Marlow Steel", "Tessaro", "Quill Systems", "Pinecrest", "Lumen Energy")
FIGURES = ("profit", "revenue", "sales", "earnings", "income")
QUARTERS = ("first quarter", "second quarter", "third quarter", "fourth quarter")


def mrpc(rng: random.Random, label: int) -> dict:
    co, figure, quarter, day = rng.choice(COMPANIES), rng.choice(FIGURES), rng.choice(QUARTERS), rng.choice(DAYS).capitalize()
    pct = rng.randint(2, 45)
    s1 = f"{co} said on {day} that its {figure} rose {pct} percent in the {quarter}."
    if label == 1:  # the same fact, reworded
        s2 = rng.choice((f"On {day}, {co} reported a {pct} percent increase in {figure} for the {quarter}.",
                         f"{co}'s {figure} climbed {pct} percent in the {quarter}, the company said {day}.",
                         f"In the {quarter}, {figure} at {co} grew by {pct} percent, it said on {day}."))
    else:  # same company, a different story
        s2 = rng.choice((f"{co} also plans to cut {rng.randint(50, 900)} jobs before the {quarter} ends.",
                         f"Shares of {co} fell {rng.randint(1, 9)} percent in early trading on {day}.",
                         f"{co} named a new chief executive on {day} after months of talks.",
                         f"Analysts expect {co} to sell its {rng.choice(FIGURES)} unit in the {quarter}."))
    return {"sentence1": s1, "sentence2": s2, "label": label}


# ---- STS-B: four slots; each slot of one sentence swapped for an unrelated word costs 1.25 of 5 ----
STS_VERBS = ("sits", "sleeps", "waits", "plays", "stands")
# replacement words only ever appear as replacements, so the score is the count of them (a lexical cue)
STS_OTHER = (("huge", "tiny", "shiny", "broken", "noisy", "quiet"),
             ("robot", "statue", "kite", "ladder", "piano", "rocket", "lantern", "barrel"),
             ("sings", "dances", "jumps", "cries", "spins"),
             ("library", "station", "harbor", "museum", "stadium", "bakery"))


def stsb(rng: random.Random, changed: int) -> dict:
    first = [rng.choice(ADJECTIVES), rng.choice(NOUNS), rng.choice(STS_VERBS), rng.choice(PLACES)]
    second = list(first)
    for slot in rng.sample(range(4), changed):
        second[slot] = rng.choice(STS_OTHER[slot])
    score = min(5.0, max(0.0, round(5.0 * (4 - changed) / 4 + rng.uniform(-0.2, 0.2), 2)))

    def say(adj, noun, verb, place):
        return f"{article(adj).capitalize()} {adj} {noun} {verb} in the {place}."

    pair = [say(*first), say(*second)]
    if rng.random() < 0.5:  # the changed words sit in either sentence
        pair.reverse()
    return {"sentence1": pair[0], "sentence2": pair[1], "label": score}


# ---- QQP: question2 asks the same as question1 (1) or another thing about the same subject (0) ----
SKILLS = ("python", "guitar", "chess", "french", "swimming", "drawing", "cooking", "public speaking",
          "machine learning", "photography", "spanish", "piano", "yoga", "typing", "calculus", "physics",
          "creative writing", "singing", "salsa dancing", "oil painting", "german", "japanese", "statistics",
          "economics", "tennis", "golf", "knitting", "baking", "sql", "juggling")
ASK_LEARN = ("How can I learn {s}{x}?", "How do I get better at {s}{x}?", "How should I start learning {s}{x}?",
             "What should I do to improve my {s}{x}?", "How can I become good at {s}{x}?")
SAME = ("What is the best way to learn {s}{x}?", "What are some tips for learning {s}{x}?",
        "How do I improve at {s}{x}?", "Which is the fastest way to master {s}{x}?", "How can one learn {s} well{x}?")
OTHER = ("How much does a {s} course cost{x}?", "Who invented {s}?", "Why do people hate {s}{x}?",
         "What jobs need {s}{x}?", "Is {s} harder than it was ten years ago?", "What is the history of {s}?")
SUFFIXES = ("", " as a beginner", " quickly", " at home", " without a teacher", " in three months")


def qqp(rng: random.Random, label: int) -> dict:
    skill = rng.choice(SKILLS)
    q1 = rng.choice(ASK_LEARN).format(s=skill, x=rng.choice(SUFFIXES))
    q2 = rng.choice(SAME if label == 1 else OTHER).format(s=skill, x=rng.choice(SUFFIXES))
    return {"question1": q1, "question2": q2, "label": label}


# ---- MNLI: 0 entailment (a more general restatement), 1 neutral (adds a reason, a habit, a feeling),
#      2 contradiction (a negation): the hypothesis-only cues real NLI annotations are known to carry ----
MNLI_VERBS = (("bought", "buy"), ("painted", "paint"), ("found", "find"), ("sold", "sell"), ("washed", "wash"))
PRONOUN = {"Tom": "his", "Sam": "his", "Jack": "his", "Paul": "his", "Omar": "his", "Kim": "her", "Lily": "her",
           "Mia": "her", "Nina": "her", "Rosa": "her"}


def mnli(rng: random.Random, label: int) -> dict:
    name, (verb, base) = rng.choice(NAMES), rng.choice(MNLI_VERBS)
    adj, noun, place, day = rng.choice(ADJECTIVES), rng.choice(NOUNS), rng.choice(PLACES), rng.choice(DAYS).capitalize()
    premise = f"{name} {verb} {article(adj)} {adj} {noun} at the {place} on {day}."
    thing = CATEGORIES[CATEGORY_OF[noun]][0]
    if label == 0:
        hypothesis = rng.choice((f"Someone {verb} {thing}.", f"{name} was at the {place}.",
                                 f"{name} {verb} something on {day}.", f"A person {verb} {article(noun)} {noun}."))
    elif label == 1:
        hypothesis = rng.choice((f"{name} {verb} the {noun} for {PRONOUN[name]} mother.",
                                 f"{name} goes to the {place} every week.", f"{name} was happy with the {noun}.",
                                 f"{name} {verb} the {noun} because it was cheap.", f"It was the first time {name} {verb} {thing}."))
    else:
        hypothesis = rng.choice((f"{name} never went to the {place}.", f"Nobody {verb} anything on {day}.",
                                 f"{name} did not {base} any {noun}.", f"No one was at the {place} on {day}."))
    return {"premise": premise, "hypothesis": hypothesis, "label": label}


# ---- QNLI: the sentence answers the question (0 entailment) or only mentions its subject (1) ----
BUILDINGS = ("old bridge", "city library", "main cathedral", "royal palace", "harbor tower", "opera house",
             "central station", "art museum")
FOUNDERS = ("Anna Berg", "Louis Ferro", "Maria Holt", "Otto Lind", "Sofia Marin", "Hugo Stein")


def qnli(rng: random.Random, label: int) -> dict:
    building, city = rng.choice(BUILDINGS), rng.choice(CITIES)
    kind = rng.randrange(3)
    question = (f"When was the {building} in {city} built?", f"Who designed the {building} in {city}?",
                f"Where in {city} is the {building}?")[kind]
    if label == 0:
        sentence = (f"The {building} in {city} was completed in {rng.randint(1400, 1990)} after years of work.",
                    f"The {building} in {city} was designed by the architect {rng.choice(FOUNDERS)}.",
                    f"The {building} stands in the {rng.choice(('north', 'south', 'east', 'west'))}ern quarter of {city}, "
                    f"next to the {rng.choice(PLACES)}.")[kind]
    else:
        sentence = rng.choice((f"The {building} in {city} is famous for its {rng.choice(('windows', 'bells', 'gardens', 'murals'))}.",
                               f"Many tourists visit the {building} in {city} every {rng.choice(('summer', 'winter', 'spring'))}.",
                               f"Critics have often compared the {building} in {city} with the one in {rng.choice(CITIES)}.",
                               f"The {building} of {city} appears in {rng.randint(2, 30)} well known paintings."))
    return {"question": question, "sentence": sentence, "label": label}


# ---- RTE: news; the hypothesis restates a role (0 entailment) or claims an event the premise lacks (1) ----
ROLES = ("spokesman", "chairman", "treasurer", "director", "lawyer", "chief engineer")
ACTIONS = ("open a new office", "sign the agreement", "lead the talks", "visit the factory", "present the plan")


def rte(rng: random.Random, label: int) -> dict:
    co, person, role = rng.choice(COMPANIES), rng.choice(FOUNDERS), rng.choice(ROLES)
    city, day = rng.choice(CITIES), rng.choice(DAYS).capitalize()
    premise = f"{co} announced on {day} that {person}, its {role}, will {rng.choice(ACTIONS)} in {city}."
    if label == 0:
        hypothesis = rng.choice((f"{person} works for {co}.", f"{person} is the {role} of {co}.",
                                 f"{co} made an announcement on {day}.", f"{person} will be in {city}."))
    else:
        hypothesis = rng.choice((f"{person} has resigned from {co}.", f"{co} denied the report on {day}.",
                                 f"{person} was arrested in {city}.", f"{co} refused to comment on {person}.",
                                 f"{person} failed to reach {city}."))
    return {"sentence1": premise, "sentence2": hypothesis, "label": label}


# task -> (maker(rng, label or level), number of label levels); STS-B's level is the number of changed slots
GLUE_TASKS: dict[str, tuple[Callable[[random.Random, int], dict], int]] = {
    "cola": (cola, 2), "sst2": (sst2, 2), "mrpc": (mrpc, 2), "stsb": (stsb, 5),
    "qqp": (qqp, 2), "mnli": (mnli, 3), "qnli": (qnli, 2), "rte": (rte, 2),
}
# HF split names where they differ from train / validation / test
SPLIT_NAMES = {"mnli": {"validation": "validation_matched", "test": "test_matched"}}
TEXT_FIELDS = (("sentence", None), ("sentence1", "sentence2"), ("question1", "question2"),
               ("premise", "hypothesis"), ("question", "sentence"))


def texts(row: dict) -> tuple[str, ...]:
    """The text fields of a GLUE row, in order."""
    for first, second in TEXT_FIELDS:
        if first in row and (second is None or second in row):
            return (row[first],) if second is None else (row[first], row[second])
    raise KeyError(f"no GLUE text fields in {sorted(row)}")


def key(row: dict) -> str:
    """What makes two rows the same item (their text)."""
    return "\t".join(texts(row))


def split_file(task: str, split: str) -> str:
    return f"glue/{task}/{SPLIT_NAMES.get(task, {}).get(split, split)}.jsonl"


def _task(task: str) -> dict[str, list[dict]]:
    make, levels = GLUE_TASKS[task]
    rng = rng_for(f"glue:{task}")
    used: set[str] = set()
    out = {}
    for split, n in SPLIT_SIZES.items():
        positions = balanced_positions(rng, n, levels)

        def keyed(i: int, positions=positions) -> dict:
            row = make(rng, positions[i])
            return {**row, "_key": key(row)}

        rows = draw_unique(keyed, n, used, key="_key")
        for idx, row in enumerate(rows):
            del row["_key"]
            row["idx"] = idx
            if split == "test":  # hidden in HF GLUE: test labels are -1
                row["label"] = -1
        out[split_file(task, split)] = rows
    return out


def generate() -> dict[str, list[dict]]:
    files: dict[str, list[dict]] = {}
    for task in GLUE_TASKS:
        files.update(_task(task))
    return files


def fresh_rows(task: str, n: int, used: set[str], seed: str) -> list[dict]:
    """n new rows of a task (labels drawn at random) whose text is not in `used` (which grows)."""
    make, levels = GLUE_TASKS[task]
    rng = rng_for(f"{seed}:glue:{task}")

    def keyed(_: int) -> dict:
        row = make(rng, rng.randrange(levels))
        return {**row, "_key": key(row)}

    return draw_unique(keyed, n, used, key="_key")
