"""The fixed small vocabulary every embedded task is built from.

Labels follow from lexical facts in these tables (a noun's category, a tool's use, a feeling's
remedy). Arithmetic is learnable by the tiny models in the demo's budget. A closed-book commonsense
label is an interaction between two words (is *this* noun in *that* category), which a 2-layer model
only learns after a long plateau (measured: boolq alone, batch 16, lr 2e-3, loss stuck at ln 2 for
~1,400 steps, then 78% on the test items at 2,500 steps); an open-book fact plus a choice of option
*index* (piqa, winogrande) stayed at chance for 300 steps too. So BoolQ items carry a passage
(commonsense_tasks.boolq): half decided by its negation, half by whether the asked category matches
the stated one. With a larger BoolQ share in the zoo's pretraining text, smoke's fine-tuning reaches
55-72% on BoolQ (chance 50%); the other commonsense formats stay near chance.
Names avoid the capitals A-E: the reference AQuA rule takes the first A-E letter of the output,
and a rationale mentioning "Ben" would otherwise answer "B".
"""

NAMES = ("Tom", "Sam", "Lily", "Mia", "Jack", "Nina", "Paul", "Rosa", "Omar", "Kim")
MATH_OBJECTS = ("apples", "pens", "books", "cards", "balls", "cups", "toys", "shells", "stamps", "marbles")
ADJECTIVES = ("small", "big", "old", "new", "red", "brown")

# category -> (display phrase with article, member nouns, a property only the members share;
# properties are chosen so no other category's noun plainly has it too)
CATEGORIES = {
    "animal": ("an animal", ("dog", "cat", "horse", "cow", "duck", "goat", "sheep", "pig", "rabbit", "mouse"),
               "breathe"),
    "fruit": ("a fruit", ("apple", "banana", "pear", "grape", "lemon", "peach", "plum", "cherry", "orange", "melon"),
              "grow on a plant"),
    "vehicle": ("a vehicle", ("car", "bus", "truck", "bike", "train", "boat", "van", "plane", "taxi", "tram"),
                "carry passengers"),
    "tool": ("a tool", ("hammer", "saw", "drill", "wrench", "shovel", "rake", "axe", "chisel", "clamp", "trowel"),
             "fix things"),
    "clothing": ("a piece of clothing", ("shirt", "hat", "coat", "sock", "shoe", "scarf", "glove", "dress", "belt", "jacket"),
                 "be worn"),
}

# category -> endings that fit a member of the category (hellaswag-style)
CATEGORY_ACTIONS = {
    "animal": ("runs across the field.", "eats some grass.", "sleeps in the barn.", "drinks from the pond."),
    "fruit": ("is cut into small pieces.", "is put in a bowl.", "is eaten for lunch.", "is washed in the sink."),
    "vehicle": ("drives down the road.", "stops at the station.", "takes people to town.", "waits at the light."),
    "tool": ("is used to fix the table.", "is put back in the box.", "is used to build a shed.", "hangs on the wall."),
    "clothing": ("is washed and dried.", "is worn to school.", "is folded on the bed.", "hangs in the closet."),
}
CATEGORY_TITLES = {"animal": "Animals", "fruit": "Food", "vehicle": "Travel", "tool": "Home repair",
                   "clothing": "Fashion"}

# (goal, the tool that does it): piqa and openbookqa
TOOL_USES = (
    ("cut the bread", "knife"), ("hit the nail", "hammer"), ("sweep the floor", "broom"),
    ("write a letter", "pen"), ("stir the soup", "spoon"), ("dig a hole", "shovel"),
    ("open the door", "key"), ("dry your hands", "towel"), ("carry water", "bucket"),
    ("light the room", "lamp"), ("cut the paper", "scissors"), ("comb your hair", "comb"),
)

# feeling -> what the person does about it: social_i_qa
FEELINGS = (
    ("hungry", "eat some food"), ("tired", "go to sleep"), ("thirsty", "drink some water"),
    ("cold", "put on a coat"), ("bored", "play a game"), ("dirty", "take a bath"),
    ("sad", "call a friend"), ("hot", "open a window"),
)

PLACES = ("park", "kitchen", "garden", "market", "street", "yard")
DAYS = ("monday", "tuesday", "friday", "saturday", "sunday")

CITIES = ("Paris", "Rome", "Oslo", "Lima", "Tokyo", "Cairo", "Dublin", "Madrid")
JOBS = ("teacher", "doctor", "farmer", "baker", "pilot", "painter", "nurse", "driver")
COLORS = ("red", "blue", "green", "black", "white", "yellow")

CHEMICALS = ("zolamide", "fenatrex", "baxoprin", "lumicet", "tiravol", "quenorex", "pradomil", "sulvacin")
PROTEINS = ("KRX1", "TPL4", "MEK9", "ZNF2", "RAB7", "HSP3", "CYP5", "GLT8")
# chemprot-like relation label -> the verb phrases that express it
RELATIONS = {
    "INHIBITOR": ("inhibits", "blocks", "suppresses"),
    "ACTIVATOR": ("activates", "stimulates", "enhances"),
    "SUBSTRATE": ("is metabolized by", "is a substrate of", "is processed by"),
    "AGONIST": ("is an agonist of", "binds and turns on", "mimics the ligand of"),
    "ANTAGONIST": ("is an antagonist of", "binds and turns off", "competes with the ligand of"),
}


def article(noun: str) -> str:
    return "an" if noun[0] in "aeiou" else "a"
