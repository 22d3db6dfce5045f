"""The eight DAPT domain tasks (Gururangan et al. 2020) as DAPT-style jsonl: `text` and a string
`label`, files train/dev/test.jsonl, label strings in the style of the release.

Each label follows from cue phrases of its own task (a relation verb, a rhetorical move, a citation
intent, loaded words, a topic's vocabulary, specific details); the two tasks of a domain share its
vocabulary, so the domain corpora (corpora.py) are the domain's words without its labels.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable

from benchmark.data.embedded.common import balanced_positions, draw_unique, rng_for
from benchmark.data.embedded.glue_tasks import COMPANIES
from benchmark.data.embedded.lexicon import CHEMICALS, CITIES, DAYS, NAMES, PROTEINS, RELATIONS

SPLIT_SIZES = {"train": 500, "dev": 100, "test": 100}
DOMAINS = {"biomed": ("chemprot", "rct"), "cs": ("acl_arc", "sciie"), "news": ("hyperpartisan", "agnews"),
           "reviews": ("helpfulness", "imdb")}


# ---- BioMed ----
def chemprot(rng: random.Random, label: str) -> str:
    chem, prot = rng.choice(CHEMICALS), rng.choice(PROTEINS)
    verb = rng.choice(RELATIONS[label])
    tail = rng.choice(("in liver cells", "in vitro", "in mice", "at low doses"))
    return f"<< {chem} >> {verb} [[ {prot} ]] {tail} ."


CONDITIONS = ("type 2 diabetes", "asthma", "chronic back pain", "hypertension", "migraine", "obesity",
              "heart failure", "depression")
OUTCOMES = ("blood pressure", "pain scores", "hospital admissions", "body weight", "symptom severity", "mortality")
POPULATIONS = ("adults", "older adults", "children", "pregnant women", "smokers", "nurses")
DRUGS = ("metformin", "aspirin", "vitamin D", "a low-salt diet", "acupuncture", "exercise training", "placebo gel")
RCT = {
    "BACKGROUND": ("{C} is a common cause of poor quality of life in {pop} .",
                   "Little is known about the effect of {d} on {o} in {pop} .",
                   "{C} remains a major public health problem among {pop} .",
                   "{C} affects about {p}% of {pop} and is often undertreated ."),
    "OBJECTIVE": ("To evaluate whether {d} reduces {o} in patients with {c} .",
                  "We aimed to assess the efficacy of {d} in adults with {c} .",
                  "The aim of this study was to compare {d} with usual care for {c} ."),
    "METHODS": ("A total of {n} patients with {c} were randomly assigned to {d} or control .",
                "Participants were followed for {w} weeks and {o} was recorded at each visit .",
                "The primary outcome was {o} at {w} weeks ."),
    "RESULTS": ("{o} was lower in the {d} group than in the control group ( {p}% vs {q}% ; p = 0.0{k} ) .",
                "After {w} weeks , {o} improved by {p}% with {d} ( 95% CI {k}-{p} ) .",
                "No significant difference in {o} was observed between groups ( p = 0.{p} ) ."),
    "CONCLUSIONS": ("{D} may reduce {o} in {pop} with {c} .",
                    "These findings suggest that {d} is safe and effective for {c} in {pop} .",
                    "Further trials in {pop} are needed to confirm the benefit of {d} ."),
}


def rct(rng: random.Random, label: str) -> str:
    c, d = rng.choice(CONDITIONS), rng.choice(DRUGS)
    return rng.choice(RCT[label]).format(c=c, C=c[0].upper() + c[1:], o=rng.choice(OUTCOMES), d=d, D=d[0].upper() + d[1:],
                                         pop=rng.choice(POPULATIONS),
                                         n=rng.randint(40, 900), w=rng.choice((4, 6, 8, 12, 24, 52)),
                                         p=rng.randint(10, 60), q=rng.randint(10, 60), k=rng.randint(1, 9))


# ---- CS ----
METHODS = ("conditional random fields", "a bilstm tagger", "the transformer", "beam search", "word2vec embeddings",
           "a maximum entropy model", "support vector machines", "a dependency parser")
TASKS = ("named entity recognition", "machine translation", "sentiment analysis", "coreference resolution",
         "question answering", "semantic role labeling", "text summarization", "part-of-speech tagging")
RESOURCES = ("the penn treebank", "wordnet", "a parallel corpus", "the conll data", "framenet", "propbank")
ACL_ARC = {
    "Background": ("{T} has been studied extensively in recent years @@CITATION .",
                   "Previous work on {t} relied on {m} @@CITATION .",
                   "{M} is a common choice for {t} @@CITATION ."),
    "CompareOrContrast": ("Unlike @@CITATION , our approach does not require {r} .",
                          "Our results on {t} are consistent with those reported by @@CITATION .",
                          "In contrast to @@CITATION , we train {m} without {r} ."),
    "Extends": ("We extend the model of @@CITATION to {t} .",
                "Our system builds on {m} as proposed by @@CITATION , adding features from {r} .",
                "We adapt the algorithm of @@CITATION so that it scales to {t} ."),
    "Future": ("In future work , we plan to apply {m} @@CITATION to {t} .",
               "It would be interesting to combine our method with @@CITATION in future experiments .",
               "A natural next step is to test the approach of @@CITATION on {r} ."),
    "Motivation": ("Following the observation of @@CITATION that {t} is hard without {r} , we ...",
                   "This is motivated by the finding of @@CITATION that {m} fails on long sentences .",
                   "As @@CITATION pointed out , {t} still lacks good models , which motivates our work ."),
    "Uses": ("We use {r} @@CITATION to train {m} .",
             "Sentences were parsed with the parser of @@CITATION before {t} .",
             "We employ {m} as implemented in the toolkit of @@CITATION ."),
}


# label-neutral openings, so one template gives many sentences
LEADS = ("", "In this paper , ", "For the {t2} experiments , ", "In section {n} , ")


def acl_arc(rng: random.Random, label: str) -> str:
    (t, t2), m = rng.sample(TASKS, 2), rng.choice(METHODS)
    slots = {"t": t, "T": t.capitalize(), "t2": t2, "m": m, "M": m.capitalize(), "r": rng.choice(RESOURCES),
             "n": rng.randint(2, 7)}
    lead, text = rng.choice(LEADS).format(**slots), rng.choice(ACL_ARC[label]).format(**slots)
    return lead + text[0].lower() + text[1:] if lead else text


FEATURES = ("accuracy", "robustness", "speed", "memory use", "sparsity")
GENERAL = ("a learning algorithm", "a statistical model", "a neural network", "a search method")
PARTS = ("an attention layer", "a softmax layer", "a feature extractor", "a language model", "a lexicon")
METRICS = ("f1 score", "bleu", "word error rate", "perplexity", "exact match")
# relation -> phrasings; [[ ]] and << >> mark the two entities as in the SciERC release (either order)
SCIIE = {
    "USED-FOR": ("we use [[ {m} ]] for << {t} >> .", "[[ {m} ]] is applied to << {t} >> ."),
    "FEATURE-OF": ("the [[ {f} ]] of << {m} >> is reported .", "<< {m} >> with high [[ {f} ]] ."),
    "HYPONYM-OF": ("[[ {m} ]] is a kind of << {g} >> .", "<< {g} >> such as [[ {m} ]] ."),
    "PART-OF": ("[[ {p} ]] is a component of << {m} >> .", "<< {m} >> consists of [[ {p} ]] and more ."),
    "COMPARE": ("[[ {m} ]] outperforms << {m2} >> .", "we compare [[ {m} ]] with << {m2} >> ."),
    "CONJUNCTION": ("[[ {t} ]] and << {t2} >> are solved jointly .", "[[ {t} ]] as well as << {t2} >> ."),
    "EVALUATE-FOR": ("[[ {e} ]] is used to evaluate << {m} >> .", "we measure << {m} >> by [[ {e} ]] ."),
}


TAILS = ("", " in our experiments", " on {r}", " in section {n}")  # label-neutral


def sciie(rng: random.Random, label: str) -> str:
    (m, m2), (t, t2) = rng.sample(METHODS, 2), rng.sample(TASKS, 2)
    text = rng.choice(SCIIE[label]).replace(" .", rng.choice(TAILS) + " .")
    return text.format(m=m, m2=m2, t=t, t2=t2, f=rng.choice(FEATURES), g=rng.choice(GENERAL), p=rng.choice(PARTS),
                       e=rng.choice(METRICS), r=rng.choice(RESOURCES), n=rng.randint(2, 7))


def _capitalised(sentence: str) -> str:
    return sentence[0].upper() + sentence[1:]


# ---- News ----
PARTIES = ("the Union Party", "the Liberty Party", "the Green Alliance", "the National Front")
ISSUES = ("the tax bill", "the border deal", "the health law", "the trade pact", "the budget")
NEUTRAL_NEWS = ("Lawmakers met in {city} on {day} to discuss {issue} .",
                "The vote on {issue} is expected next month , officials said .",
                "{party} released a statement about {issue} on {day} .")
LOADED = ("This is a disgrace and a betrayal of every honest voter !",
          "The corrupt elites of {party} will stop at nothing to destroy this country .",
          "Only a fool would believe the lies they tell about {issue} !",
          "Wake up , people : {party} is waging war on your freedom .")
SOBER = ("According to officials , the vote was {a} to {b} .",
         "Analysts said the outcome of {issue} remains uncertain .",
         "Both parties said they would continue talks in {city} .",
         "A spokesman declined to comment on the details .")


def hyperpartisan(rng: random.Random, label: str) -> str:
    slots = {"city": rng.choice(CITIES), "day": rng.choice(DAYS).capitalize(), "issue": rng.choice(ISSUES),
             "party": rng.choice(PARTIES), "a": rng.randint(40, 90), "b": rng.randint(10, 60)}
    pool = LOADED if label == "true" else SOBER
    parts = [rng.choice(NEUTRAL_NEWS), *rng.sample(pool, 2)]
    rng.shuffle(parts)
    return " ".join(_capitalised(p.format(**slots)) for p in parts)


TEAMS = ("the Lions", "the Rovers", "United", "the Hawks", "the Giants", "City")
COUNTRIES = ("France", "Japan", "Brazil", "Egypt", "Norway", "Peru", "India", "Kenya")
GADGETS = ("phone", "chip", "satellite", "browser", "robot", "battery")
TECH_FIRMS = ("Intelix", "Microvia", "Nanosoft", "Qubitron")
DATELINES = ("", *(f"{c.upper()} (Reuters) - " for c in CITIES), "(AP) - ", *(f"{c.upper()} (AFP) - " for c in CITIES[:3]))
# AG News classes as numbered in the original csv: 1 World, 2 Sports, 3 Business, 4 Sci/Tech
AGNEWS = {
    "1": ("Leaders of {c1} and {c2} met in {city} to discuss the ceasefire .",
          "{c1} recalled its ambassador to {c2} on {day} after the election dispute .",
          "Troops from {c2} crossed into {c1} on {day} , the foreign ministry said ."),
    "2": ("{t1} beat {t2} {a}-{b} in {city} to reach the cup final .",
          "The coach of {t1} praised the striker after a {a}-{b} win .",
          "{t2} lost their third straight match at home on {day} ."),
    "3": ("Shares of {firm} rose {a} percent on {day} after quarterly profit beat forecasts .",
          "Oil prices fell on {day} as investors worried about weak demand in {c1} .",
          "{firm} agreed on {day} to buy a rival for {a} billion dollars in cash ."),
    "4": ("{tech} unveiled a new {g} on {day} that uses far less power , researchers said .",
          "Scientists in {city} launched a {g} to study the climate of {c1} .",
          "A software flaw in the {g} let hackers steal passwords , {tech} said on {day} ."),
}


def agnews(rng: random.Random, label: str) -> str:
    (c1, c2), (t1, t2) = rng.sample(COUNTRIES, 2), rng.sample(TEAMS, 2)
    won = rng.randint(1, 5)
    slots = {"c1": c1, "c2": c2, "t1": t1, "t2": t2, "firm": rng.choice(COMPANIES), "tech": rng.choice(TECH_FIRMS),
             "g": rng.choice(GADGETS), "city": rng.choice(CITIES), "day": rng.choice(DAYS).capitalize(),
             "a": won, "b": rng.randint(0, won - 1)}
    body = _capitalised(rng.choice(AGNEWS[label]).format(**slots))
    # AG News bodies often open with a dateline, whatever the topic; it follows from the body, so two items
    # never differ by their dateline alone (a test body must not reappear under another dateline in train)
    return DATELINES[zlib.crc32(body.encode()) % len(DATELINES)] + body


# ---- Reviews ----
PRODUCTS = ("blender", "backpack", "headset", "coffee maker", "desk lamp", "phone case", "kettle", "tent")
PRODUCT_PARTS = ("lid", "strap", "cable", "handle", "switch", "zipper")
SPECIFIC = ("I have used this {p} every day for {n} months .", "The {part} broke after {n} weeks , but the seller replaced it .",
            "Compared to my old {p} , it is about {n} cm smaller and much lighter .",
            "It heats up in {n} minutes and the {part} stays cool .", "Battery lasts around {n} hours on a full charge .")
VAGUE = ("{x} !", "Got it yesterday .", "It is a {p} .", "Ok I guess .", "Would buy again maybe .", "My cousin has one too .")
MOODS = ("Love it", "Meh", "Not bad", "Hate it", "Wow", "Whatever")


def helpfulness(rng: random.Random, label: str) -> str:
    slots = {"p": rng.choice(PRODUCTS), "part": rng.choice(PRODUCT_PARTS), "n": rng.randint(2, 30), "x": rng.choice(MOODS)}
    # sentiment is independent of helpfulness: the label lies in specific details, not in liking the product
    parts = rng.sample(SPECIFIC, 2) if label == "helpful" else rng.sample(VAGUE, 2)
    return " ".join([rng.choice(MOODS) + " .", *parts]).format(**slots)


RAVE = ("An absolute masterpiece , I was gripped from start to finish .", "Brilliant performances and a superb score .",
        "A must see , I have watched it three times already .", "Captivating and beautifully shot , I loved every minute .")
PAN = ("A complete waste of time , I fell asleep halfway through .", "Unwatchable , we walked out after an hour .",
       "Predictable and painfully slow , avoid at all costs .", "The worst film I have seen this year , truly cringe .")
PLOT = ("The story follows a {job} in {city} who finds an old letter .", "{name} plays a detective chasing a thief across {city} .",
        "It is set in {city} during a long winter .", "The film runs for about {n} minutes .")


def imdb(rng: random.Random, label: str) -> str:
    slots = {"job": rng.choice(("nurse", "pilot", "baker", "teacher")), "city": rng.choice(CITIES),
             "name": rng.choice(NAMES), "n": rng.randint(85, 170)}
    parts = [rng.choice(PLOT), *rng.sample(RAVE if label == "1" else PAN, 2)]
    rng.shuffle(parts)
    return " ".join(parts).format(**slots)


# task -> (maker(rng, label) -> text, the label strings)
DAPT_TASKS: dict[str, tuple[Callable[[random.Random, str], str], tuple[str, ...]]] = {
    "chemprot": (chemprot, tuple(RELATIONS)), "rct": (rct, tuple(RCT)),
    "acl_arc": (acl_arc, tuple(ACL_ARC)), "sciie": (sciie, tuple(SCIIE)),
    "hyperpartisan": (hyperpartisan, ("true", "false")), "agnews": (agnews, tuple(AGNEWS)),
    "helpfulness": (helpfulness, ("helpful", "unhelpful")), "imdb": (imdb, ("0", "1")),
}


def _task(task: str) -> dict[str, list[dict]]:
    make, labels = DAPT_TASKS[task]
    rng = rng_for(f"dapt:{task}")
    used: set[str] = set()
    out = {}
    for split, n in SPLIT_SIZES.items():
        positions = balanced_positions(rng, n, len(labels))

        def row(i: int, positions=positions) -> dict:
            label = labels[positions[i]]
            return {"text": make(rng, label), "label": label}

        out[f"dapt/{task}/{split}.jsonl"] = draw_unique(row, n, used, key="text")
    return out


def generate() -> dict[str, list[dict]]:
    files: dict[str, list[dict]] = {}
    for task in DAPT_TASKS:
        files.update(_task(task))
    return files


def sample_text(task: str, rng: random.Random) -> str:
    """One new text of a task, its label drawn at random (for unlabelled corpora)."""
    make, labels = DAPT_TASKS[task]
    return make(rng, rng.choice(labels))
