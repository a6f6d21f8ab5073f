"""Write the shipped personal-writing evaluation set, ``sdk/data/personal_writing.jsonl``.

Synthetic users, each with a private history (``profile``) and personal writing tasks whose good
answers depend on that history, in the LaMP / LongLaMP layout (``user_id``, ``input``,
``profile``, ``output``) plus ``facts``: short strings a good answer should contain, ``writer``:
the user's name, and ``recipient``: whom the request's relation ("my sister") names, if anyone. Every
example's facts occur verbatim in its user's profile and in its reference answer, and never in
its public ``input``.

Deterministic: one seeded ``random.Random``, no network, no models; the same seed writes the same
bytes. A test regenerates the file and compares it with the shipped one.

Usage::

    python tools/make_eval_set.py                # rewrite the shipped file
    python tools/make_eval_set.py --out FILE --seed 7 --users 60
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "sdk" / "data" / "personal_writing.jsonl"
DEFAULT_SEED = 2026
DEFAULT_USERS = 42
TASKS_PER_USER = 2
MIN_WORDS, MAX_WORDS = 25, 70


def _listed(text: str) -> tuple[str, ...]:
    """A comma-separated list written over several lines, as a tuple."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


def _table(text: str) -> tuple[tuple[str, ...], ...]:
    """One row per line, cells split at ``|`` (an empty line is skipped)."""
    rows = (line.split("|") for line in text.strip().splitlines() if line.strip())
    return tuple(tuple(cell.strip() for cell in row) for row in rows)


# -- pools -----------------------------------------------------------------------------------------

#: (first name, gender) from many languages; gender only picks "sister"/"brother" and a pronoun.
NAMES: tuple[tuple[str, str], ...] = tuple(
    (item.split()[0], item.split()[1])
    for item in _listed("""
Inês f, Tomás m, Beatriz f, Duarte m, Lucía f, Javier m, Carmen f, Mateo m, Camille f,
Julien m, Léa f, Hugo m, Greta f, Jonas m, Lena f, Felix m, Zofia f, Kacper m, Agnieszka f,
Piotr m, Astrid f, Nils m, Saga f, Eero m, Aino f, Siobhán f, Cian m, Niamh f, Rory m,
Elif f, Emre m, Zeynep f, Deniz m, Eleni f, Nikos m, Chiamaka f, Tunde m, Ngozi f, Emeka m,
Wanjiru f, Kamau m, Akosua f, Kwame m, Thandiwe f, Sipho m, Amira f, Omar m, Layla f,
Karim m, Yasmin f, Priya f, Arjun m, Ananya f, Rohan m, Kavya f, Mei f, Wei m, Xiu f,
Jun m, Lan f, Yuki f, Haruto m, Aoi f, Ren m, Sakura f, Ji-woo f, Min-jun m, Seo-yeon f,
Do-hyun m, Linh f, Minh m, Thảo f, Valentina f, Santiago m, Camila f, Diego m, Ximena f,
Rafael m, Gabriela f, Thiago m, Olivia f, Noah m, Grace f, Liam m, Maya f, Ethan m,
Aroha f, Tane m, Leilani f, Keanu m, Ivana f, Luka m, Katarina f, Marko m, Dalia f,
Yosef m, Noa f, Ari m, Sofia f, Matteo m
""")
)

SURNAMES: tuple[str, ...] = _listed("""
Kowalski, Fernandes, Okonkwo, Nakamura, Schneider, Lindqvist, Moreau, Rossi, Papadopoulos,
Yilmaz, Haddad, Mensah, Mwangi, Nguyen, Tanaka, Park, Chen, Sharma, Iyer, Gallagher,
O'Brien, MacLeod, Novak, Horvath, Dubois, García, Herrera, Silva, Costa, Van Dijk, Jansen,
Virtanen, Petrov, Dlamini, Adeyemi, Kaplan, Levi, Bianchi, Andersen, Popescu
""")

#: city | two neighbourhoods | two parks | a nature spot | the spot's distinctive name
CITIES: tuple[tuple[str, ...], ...] = _table("""
Porto | Bonfim; Cedofeita | Parque da Cidade; the Palácio de Cristal gardens | the Gerês mountains | Gerês
Lisbon | Alfama; Campo de Ourique | Jardim da Estrela; Parque Eduardo VII | the Sintra hills | Sintra
Madrid | Lavapiés; Chamberí | Retiro Park; Casa de Campo | the Guadarrama mountains | Guadarrama
Barcelona | Gràcia; Poblenou | Parc de la Ciutadella; Park Güell | the Montserrat trails | Montserrat
Lyon | Croix-Rousse; Vaise | Parc de la Tête d'Or; Parc des Hauteurs | the Monts d'Or | Monts d'Or
Berlin | Kreuzberg; Prenzlauer Berg | Tempelhofer Feld; Volkspark Friedrichshain | the Grunewald forest | Grunewald
Munich | Schwabing; Haidhausen | the Englischer Garten; Westpark | the Isar valley | Isar
Vienna | Leopoldstadt; Neubau | the Augarten; the Prater | the Vienna Woods | Vienna Woods
Kraków | Kazimierz; Podgórze | Planty Park; Błonia meadow | the Ojców valley | Ojców
Prague | Vinohrady; Žižkov | Letná Park; Riegrovy sady | the Šárka valley | Šárka
Stockholm | Södermalm; Vasastan | Tantolunden; Djurgården | the Tyresta forest | Tyresta
Helsinki | Kallio; Punavuori | Kaivopuisto; Sibelius Park | Nuuksio national park | Nuuksio
Edinburgh | Leith; Marchmont | the Meadows; Inverleith Park | the Pentland Hills | Pentland
Dublin | Phibsborough; Rathmines | Phoenix Park; St Stephen's Green | the Wicklow mountains | Wicklow
Manchester | Ancoats; Chorlton | Heaton Park; Platt Fields | the Peak District | Peak District
Istanbul | Kadıköy; Cihangir | Yıldız Park; Maçka Park | the Belgrad Forest | Belgrad Forest
Athens | Koukaki; Exarchia | the National Garden; Filopappou Hill | Mount Hymettus | Hymettus
Lagos | Yaba; Surulere | Ndubuisi Kanu Park; Freedom Park | the Lekki Conservation Centre | Lekki
Nairobi | Kilimani; Westlands | Uhuru Park; Karura Forest | the Ngong Hills | Ngong
Cape Town | Observatory; Sea Point | the Company's Garden; Green Point Park | Table Mountain | Table Mountain
Accra | Osu; East Legon | the Legon Botanical Gardens; Efua Sutherland Park | the Aburi hills | Aburi
Cairo | Zamalek; Maadi | Al-Azhar Park; the Fish Garden | the Wadi Degla reserve | Wadi Degla
Mumbai | Bandra; Dadar | Shivaji Park; Joggers Park | Sanjay Gandhi National Park | Sanjay Gandhi
Bengaluru | Indiranagar; Jayanagar | Cubbon Park; Lalbagh | Nandi Hills | Nandi Hills
Tokyo | Shimokitazawa; Koenji | Yoyogi Park; Inokashira Park | Mount Takao | Takao
Osaka | Nakazakicho; Tenma | Osaka Castle Park; Utsubo Park | the Minoo waterfall trail | Minoo
Seoul | Mangwon; Seongsu | Seoul Forest; Hangang Park | Bukhansan | Bukhansan
Hanoi | Tây Hồ; Ba Đình | Thong Nhat Park; the Botanical Garden | Ba Vì national park | Ba Vì
Taipei | Da'an; Zhongshan | Da'an Forest Park; Huashan park | Yangmingshan | Yangmingshan
Melbourne | Fitzroy; Brunswick | Royal Park; the Fitzroy Gardens | the Dandenong Ranges | Dandenong
Toronto | Leslieville; the Annex | Trinity Bellwoods; High Park | the Bruce Trail | Bruce Trail
Montréal | the Plateau; Verdun | Parc La Fontaine; Parc Jarry | the Laurentians | Laurentians
Mexico City | Coyoacán; Roma Norte | Chapultepec Park; Parque México | the Desierto de los Leones | Desierto de los Leones
São Paulo | Pinheiros; Vila Madalena | Ibirapuera Park; Parque Villa-Lobos | the Serra da Cantareira | Cantareira
Buenos Aires | Palermo; San Telmo | Parque Tres de Febrero; Parque Centenario | the Tigre delta | Tigre
Bogotá | Chapinero; Usaquén | Parque Simón Bolívar; Parque de la 93 | the Monserrate trail | Monserrate
""")

CAFES: tuple[str, ...] = _listed("""
Café Lumen, The Copper Kettle, Bean & Leaf, Kaffe Norden, Café Mirador, Little Fig,
Blue Door Coffee, Café Amarelo, Sunday Grounds, Moka House, The Green Cup, Café Oriole,
Pepper Tree Coffee, Kissa Hoshi, Café Tanto, The Daily Grind, Lighthouse Roasters,
Café Pistache, Ember & Oat, Café Sol, The Reading Room, Honeycomb Café, Café Kaju,
Marigold Coffee
""")

#: restaurant | what it serves
RESTAURANTS: tuple[tuple[str, ...], ...] = _table("""
Trattoria Nonna Pia | Italian
Sakura Izakaya | Japanese
Mama Oliech's | Kenyan
Taquería El Güero | Mexican
Pho Hoa | Vietnamese
Ottoman Meze | Turkish
Chez Margot | French
Spice Route | Indian
Seoul Kitchen | Korean
The Olive Tree | Greek
Dosa Corner | South Indian
Casa Verde | Portuguese
Bistro Lune | French
Injera House | Ethiopian
Nordic Table | Scandinavian
La Palapa | Mexican
Ramen Tetsu | Japanese
Mezze Garden | Lebanese
Peking Garden | Chinese
Bombay Canteen | Indian
Jollof Junction | West African
El Asador | Argentinian
""")

#: destination | what I will do there | two things I bought for it
TRIPS: tuple[tuple[str, ...], ...] = _table("""
Lofoten | see the northern lights | thermal base layers | head torch
Zanzibar | snorkel on the reef | snorkel mask | reef-safe sunscreen
Kyoto | visit the temples | walking shoes | pocket umbrella
Reykjavík | soak in the hot springs | swimsuit | waterproof jacket
Marrakech | explore the souks | linen scarf | water bottle
the Dolomites | hike from hut to hut | hiking poles | blister plasters
Bali | learn to surf | rash guard | after-sun lotion
Patagonia | trek to the glaciers | down jacket | trekking gaiters
Hokkaido | ski | ski goggles | hand warmers
Sicily | swim and eat street food | beach towel | sandals
Cappadocia | take a balloon ride | warm fleece | camera
the Scottish Highlands | walk the West Highland Way | midge repellent | waterproof trousers
Oaxaca | take a cooking class | sun hat | notebook
Sri Lanka | ride the hill-country train | mosquito repellent | cotton shirts
Quebec City | see the winter carnival | snow boots | wool hat
Crete | hike the Samaria Gorge | trail shoes | sun cap
Ha Long Bay | kayak between the islands | dry bag | quick-dry shorts
Tanzania | go on safari | binoculars | khaki jacket
Tongariro | hike the Alpine Crossing | rain shell | hiking boots
Tuscany | cycle between vineyards | padded cycling shorts | bike lock
Lapland | go dog sledding | thermal socks | ski gloves
Madeira | walk the levadas | trail runners | rain poncho
""")
#: gear that takes no article ("I bought midge repellent")
_MASS = frozenset(
    {"reef-safe sunscreen", "after-sun lotion", "midge repellent", "mosquito repellent"}
)

#: profile phrase | the word that names the diet (empty: eats everything)
DIETS: tuple[tuple[str, ...], ...] = _table("""
I am vegetarian | vegetarian
I have been vegan for three years | vegan
I eat fish but no meat (pescatarian) | pescatarian
I have coeliac disease, so everything I eat has to be gluten-free | gluten-free
I eat pretty much everything |
""")
#: allergens; "" means none
ALLERGENS: tuple[str, ...] = ("peanuts", "shellfish", "sesame", "walnuts", "eggs", "")

#: dish | diets it does not fit (besides "eats everything", which fits all) | allergens in it
DISHES: tuple[tuple[str, ...], ...] = _table("""
mushroom risotto | vegan |
chickpea curry | |
lentil dal | |
shakshuka | vegan | eggs
pad thai with tofu | gluten-free | peanuts eggs
miso-glazed salmon | vegetarian vegan | sesame
grilled sardines | vegetarian vegan |
black bean tacos | |
spinach and feta pie | vegan gluten-free | eggs
vegetable bibimbap | vegan gluten-free | sesame eggs
jollof rice | |
chicken tagine | vegetarian vegan pescatarian |
pesto pasta | vegan gluten-free | walnuts
prawn laksa | vegetarian vegan gluten-free | shellfish
roast pumpkin soup | |
beef pho | vegetarian vegan pescatarian |
aubergine parmigiana | vegan gluten-free | eggs
stuffed peppers with quinoa | |
""")

#: job | workplace
JOBS: tuple[tuple[str, ...], ...] = _table("""
nurse | hospital
paramedic | ambulance station
pharmacist | pharmacy
chef | restaurant kitchen
bus driver | bus depot
hotel receptionist | hotel
baker | bakery
veterinary nurse | animal clinic
train conductor | railway station
warehouse supervisor | warehouse
lab technician | lab
care worker | care home
firefighter | fire station
midwife | maternity ward
air traffic controller | control tower
radio producer | studio
""")
SHIFTS: tuple[str, ...] = ("night shift", "early shift", "late shift", "double shift")
DAYS: tuple[str, ...] = _listed("Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, Sunday")
MONTHS: tuple[str, ...] = _listed("""
January, February, March, April, May, June, July, August, September, October, November,
December
""")

#: what my best friend and I do together | where ("nature", "park" or "cafe")
FRIEND_HOBBIES: tuple[tuple[str, ...], ...] = _table("""
go hiking in | nature
go cycling around | nature
go birdwatching in | nature
go running in | park
play frisbee in | park
go sketching in | park
play chess at | cafe
do the crossword at | cafe
""")
CLASSES: tuple[str, ...] = _listed("""
pottery, salsa, life drawing, choir, yoga, jiu-jitsu, improv, woodworking, Italian, ceramics,
bouldering, sign language
""")
PETS: tuple[str, ...] = ("dog", "cat", "rabbit", "parrot", "tortoise")
PET_NAMES: tuple[str, ...] = _listed("""
Biscuit, Mochi, Pimenta, Simba, Kiwi, Tofu, Bolt, Nala, Pixel, Churro, Miso, Ziggy, Olive,
Bruno, Loki, Coco, Pudding, Frida, Rocco, Mango, Chai, Pesto, Juno, Waffles, Peanut Butter,
Kofi, Sushi, Bamboo
""")
PET_HABITS: tuple[str, ...] = _listed("""
steals socks, sleeps on my keyboard, hates the vacuum cleaner, wakes me up at six,
loves long walks, chews on shoelaces
""")
#: what my sibling loves | a birthday plan built on it
SIBLING_LOVES: tuple[tuple[str, ...], ...] = _table("""
jazz | I have booked us two seats at a jazz night
orchids | a new orchid is on its way to your door
board games | I found the board games cafe you wanted to try
vinyl records | there is a rare vinyl records fair I want to take you to
crosswords | I bought you a book of the hardest crosswords I could find
rock climbing | I got us a day pass for rock climbing
Korean dramas | I have a whole weekend of Korean dramas planned for us
sourdough | I finally found you a proper sourdough proving basket
astronomy | I got us tickets for an astronomy night at the planetarium
matcha | a tin of ceremonial matcha is in the post
poetry | I found a signed poetry collection for your shelf
football | I got us football tickets for the derby
flamenco | I booked a flamenco show for when I visit
houseplants | I am bringing you cuttings for your houseplants collection
""")
#: broken thing in the flat | what is wrong with it
FLAT_ISSUES: tuple[tuple[str, ...], ...] = _table("""
boiler | makes a banging noise
kitchen tap | keeps leaking
washing machine | does not drain
bathroom extractor fan | stopped working
bedroom radiator | does not heat up
front door lock | keeps sticking
balcony door | does not close properly
shower | has almost no pressure
oven | does not heat properly
living room window | lets in a cold draught
""")

#: closings before the writer's name ("Cheers, Tomás")
CASUAL_SIGNOFFS: tuple[str, ...] = _listed(
    "Cheers, Love, Best, Warmly, Talk soon, Hugs, Take care, All the best, See you soon, Much love"
)
FORMAL_SIGNOFFS: tuple[str, ...] = _listed(
    "Kind regards, Best regards, Yours sincerely, With best wishes"
)

#: Profile lines that help no task (the retrieval has to skip them).
DISTRACTORS: tuple[str, ...] = (
    "I once read that octopuses have three hearts and I still think about it.",
    "My passport expires in two years, so I should renew it soon.",
    "My phone screen has a small crack in the top corner.",
    "I always choose a window seat on trains.",
    "I am trying to read fifty books this year.",
    "I switched my bank account last spring and the app is much better.",
    "I have never managed to keep a basil plant alive.",
    "My laptop is seven years old and very slow.",
    "I prefer podcasts about history to anything about true crime.",
    "I learned to juggle three balls during a long winter.",
    "I do not like the smell of coffee, even though I drink tea all day.",
    "My first concert was a brass band in a village square.",
    "I am terrible at remembering where I parked.",
    "I recently fixed my own bicycle puncture for the first time.",
    "I collect postcards from every train station I pass through.",
    "My favourite season is autumn because of the light.",
    "I had braces until I was sixteen.",
    "I keep a paper diary and write in it most nights.",
    "I do the weekly shop on Monday evenings when the shop is quiet.",
    "I was once an extra in a cheese advert.",
)

STYLES: dict[str, tuple[str, ...]] = {
    "exclaim": (
        "My friends tease me because my messages are full of exclamation marks!",
        "I use lots of exclamation marks when I write, even in emails!",
    ),
    "short": (
        "I write in very short sentences. No fluff.",
        "People say my messages are blunt: short sentences, straight to the point.",
    ),
    "formal": (
        "I keep my writing formal and avoid contractions, even with close friends.",
        "My messages are always polite and formal; I start them with 'Dear'.",
    ),
    "ps": (
        "I almost always add a P.S. at the end of my messages.",
        "Nearly every note I write ends with a P.S.",
    ),
}

# -- one user --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    """Everything true of one synthetic user; the profile and the tasks are drawn from it."""

    user_id: str
    name: str
    style: str
    signoff: str
    city: str
    neighbourhood: str
    park: str
    nature: tuple[str, ...]
    cafe: str
    restaurant: tuple[str, ...]
    friend: str
    friend_hobby: tuple[str, ...]
    friend_day: str
    partner: str
    sibling: tuple[str, str]  # (name, "sister" | "brother")
    sibling_city: str
    sibling_love: tuple[str, ...]
    colleague: str
    neighbour: str
    job: tuple[str, ...]
    shift: str
    shift_day: str
    class_name: str
    class_day: str
    pet: tuple[str, str, str]  # (kind, name, habit)
    diet: tuple[str, ...]
    allergen: str
    dish: str
    trip: tuple[str, ...]
    landlord: str
    flat_issue: tuple[str, ...]
    issue_month: str
    distractors: tuple[str, ...]


def _draw_user(rng: random.Random, index: int) -> User:
    people = rng.sample(NAMES, 6)
    name, friend, partner, colleague, neighbour = (p[0] for p in people[:5])
    sibling_name, sibling_gender = people[5]
    home, elsewhere = rng.sample(CITIES, 2)
    city, neighbourhoods, parks, nature, nature_name = home
    style = rng.choice(sorted(STYLES))
    signoffs = FORMAL_SIGNOFFS if style == "formal" else CASUAL_SIGNOFFS
    diet = rng.choice(DIETS)
    allergen = rng.choice(ALLERGENS) if diet[1] else rng.choice(ALLERGENS[:-1])
    dishes = [
        dish
        for dish, unfit, has in DISHES
        if diet[1] not in unfit.split() and allergen not in has.split()
    ]
    days = rng.sample(DAYS, 3)
    return User(
        user_id=f"u{index:03d}",
        name=name,
        style=style,
        signoff=f"{rng.choice(signoffs)}, {name}",
        city=city,
        neighbourhood=rng.choice(neighbourhoods.split("; ")),
        park=rng.choice(parks.split("; ")),
        nature=(nature, nature_name),
        cafe=rng.choice(CAFES),
        restaurant=rng.choice(RESTAURANTS),
        friend=friend,
        friend_hobby=rng.choice(FRIEND_HOBBIES),
        friend_day=days[0],
        partner=partner,
        sibling=(sibling_name, "sister" if sibling_gender == "f" else "brother"),
        sibling_city=elsewhere[0],
        sibling_love=rng.choice(SIBLING_LOVES),
        colleague=colleague,
        neighbour=neighbour,
        job=rng.choice(JOBS),
        shift=rng.choice(SHIFTS),
        shift_day=days[1],
        class_name=rng.choice(CLASSES),
        class_day=days[2],
        pet=(rng.choice(PETS), rng.choice(PET_NAMES), rng.choice(PET_HABITS)),
        diet=diet,
        allergen=allergen,
        dish=rng.choice(dishes),
        trip=rng.choice(TRIPS),
        landlord=f"{rng.choice(('Mr', 'Mrs', 'Ms'))} {rng.choice(SURNAMES)}",
        flat_issue=rng.choice(FLAT_ISSUES),
        issue_month=rng.choice(MONTHS),
        distractors=tuple(rng.sample(DISTRACTORS, rng.randint(2, 3))),
    )


def _pick(rng: random.Random, *options: str) -> str:
    return rng.choice(options)


def _friend_place(u: User) -> str:
    where = u.friend_hobby[1]
    return {"nature": u.nature[0], "park": u.park, "cafe": u.cafe}[where]


def _friend_fact(u: User) -> str:
    where = u.friend_hobby[1]
    park = u.park.removeprefix("the ")
    return {"nature": u.nature[1], "park": park, "cafe": u.cafe}[where]


def _a(word: str) -> str:
    return f"an {word}" if word[0].lower() in "aeiou" else f"a {word}"


def _some(thing: str) -> str:
    """``thing`` with the article it takes ("a head torch", "ski goggles", "midge repellent")."""
    return thing if thing.endswith("s") or thing in _MASS else _a(thing)


def _profile_texts(u: User, rng: random.Random) -> list[str]:
    """The user's private history: one line per fact group, phrasings drawn, order shuffled."""
    kind, pet, habit = u.pet
    sib, rel = u.sibling
    pos, subj = ("her", "she") if rel == "sister" else ("his", "he")
    diet_line = u.diet[0]
    if u.allergen:
        diet_line += f", {'and' if u.diet[1] else 'but'} I am allergic to {u.allergen}"
    job, place = u.job
    dest, activity, gear1, gear2 = u.trip
    lines = [
        _pick(
            rng,
            f"My best friend {u.friend} and I {u.friend_hobby[0]} {_friend_place(u)} "
            f"most {u.friend_day}s.",
            f"Most {u.friend_day}s my best friend {u.friend} and I {u.friend_hobby[0]} "
            f"{_friend_place(u)}.",
        ),
        _pick(
            rng,
            f"My partner {u.partner} and I love {u.restaurant[0]}, a small "
            f"{u.restaurant[1]} place near our flat.",
            f"{u.partner} (my partner) and I celebrate everything at {u.restaurant[0]}, "
            f"our favourite {u.restaurant[1]} restaurant.",
        ),
        f"My {rel} {sib} lives in {u.sibling_city}; {pos} birthday is in "
        f"{rng.choice(MONTHS)} and {subj} loves {u.sibling_love[0]}.",
        _pick(
            rng,
            f"I work as a {job} at the {place}; my {u.shift}s are on {u.shift_day}s.",
            f"At the {place} where I work as a {job}, I do {u.shift}s on {u.shift_day}s.",
        ),
        _pick(
            rng,
            f"When I need to swap shifts, I ask my colleague {u.colleague}.",
            f"My colleague {u.colleague} and I often cover each other's shifts.",
        ),
        f"I have a {kind} called {pet} who {habit}.",
        f"My neighbour {u.neighbour} looks after {pet} whenever I am away.",
        _pick(
            rng,
            f"I live in {u.neighbourhood}, {u.city}.",
            f"Home is a small flat in {u.neighbourhood}, in {u.city}.",
        ),
        _pick(
            rng,
            f"My favourite café is {u.cafe}, round the corner from my flat.",
            f"I spend far too much time (and money) at {u.cafe}, my local café.",
        ),
        f"{diet_line}.",
        _pick(
            rng,
            f"My favourite thing to cook is {u.dish}.",
            f"The dish I cook best is {u.dish}; I make it at least once a week.",
        ),
        f"Next month I am going to {dest} to {activity}; I have already bought "
        f"{_some(gear1)} and {_some(gear2)} for it.",
        f"On {u.class_day} evenings I go to {_a(u.class_name)} class.",
        f"My landlord, {u.landlord}, still has not fixed the {u.flat_issue[0]} in my flat; "
        f"it {u.flat_issue[1]} and has done since {u.issue_month}.",
        _pick(
            rng,
            f"I signed off my last email to my team with '{u.signoff}'.",
            f"I sign my messages '{u.signoff}'.",
        ),
        rng.choice(STYLES[u.style]),
        *u.distractors,
    ]
    rng.shuffle(lines)
    return lines


# -- tasks -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Draft:
    """A task's answer before styling: greeting name (None: not a letter), clauses, P.S."""

    to: str | None
    clauses: tuple[tuple[str, bool], ...]  # (sentence without final punctuation, optional)
    ps: str
    facts: tuple[str, ...]


Task = Callable[[User, random.Random], tuple[str, Draft]]


def _weekend(u: User, rng: random.Random) -> tuple[str, Draft]:
    query = _pick(
        rng,
        "Write a short message to my best friend proposing plans for this weekend.",
        "Text my best friend to suggest something fun for the weekend.",
    )
    verb = u.friend_hobby[0]
    clauses = (
        (f"Are you free on {u.friend_day}", False),
        (
            _pick(
                rng,
                f"Let us {verb} {_friend_place(u)} again",
                f"I would love to {verb} {_friend_place(u)} like last time",
            ),
            False,
        ),
        (
            f"Afterwards we could get a coffee at {u.cafe}"
            if u.friend_hobby[1] != "cafe"
            else f"I will be there early to get our usual table at {u.cafe}",
            False,
        ),
        ("It has been a long week and I really need it", True),
        ("Let me know what time works for you", False),
    )
    return query, Draft(u.friend, clauses, "Bring snacks this time", (u.friend, _friend_fact(u)))


def _birthday(u: User, rng: random.Random) -> tuple[str, Draft]:
    sib, rel = u.sibling
    query = _pick(
        rng,
        f"Write a short birthday note for my {rel}.",
        f"Help me write a birthday message to my {rel}.",
    )
    love, plan = u.sibling_love
    clauses = (
        (f"Happy birthday, {sib}", False),
        (f"I hope {u.sibling_city} is treating you well today", False),
        (f"Since you love {love}, {plan}", False),
        ("I miss you and I cannot wait to celebrate properly", True),
    )
    return query, Draft(sib, clauses, "Call me tonight", (sib, love, u.sibling_city))


def _dinner(u: User, rng: random.Random) -> tuple[str, Draft]:
    query = _pick(
        rng,
        "Suggest what I could cook for dinner tonight.",
        "What should I make for dinner this evening? Give me one idea.",
    )
    diet = u.diet[1]
    safe = []
    if diet:
        safe.append(f"it is {diet}")
    if u.allergen:
        safe.append(f"it has no {u.allergen}")
    clauses = (
        (f"Tonight I could cook {u.dish} for {u.partner} and me", False),
        (f"It is my favourite and {' and '.join(safe)}, so it is safe for me", False),
        ("I can make a double batch and keep some for lunch tomorrow", True),
        (f"If I am tired, we can order from {u.restaurant[0]} instead", False),
    )
    word = diet or u.allergen
    return query, Draft(None, clauses, "", (u.dish, word, u.partner))


def _shift_swap(u: User, rng: random.Random) -> tuple[str, Draft]:
    query = _pick(
        rng,
        "Reply to my colleague who asked if I can swap shifts with them next week.",
        "My coworker wants to swap a shift next week. Write my reply.",
    )
    clauses = (
        ("Thanks for asking", True),
        (f"I can swap with you next week, but not on {u.shift_day}", False),
        (f"That is already my {u.shift} and I cannot do two in a row", False),
        (f"{u.class_day} evening is also out because of my {u.class_name} class", False),
        ("Any other day works, so just tell me which one", False),
    )
    return query, Draft(
        u.colleague, clauses, "Coffee is on me", (u.colleague, u.shift_day, u.class_name)
    )


def _landlord(u: User, rng: random.Random) -> tuple[str, Draft]:
    query = _pick(
        rng,
        "Write a short email asking my landlord to fix something in my flat.",
        "Draft an email to my landlord about a repair.",
    )
    thing, problem = u.flat_issue
    clauses = (
        (f"I am writing about the {thing} in my flat in {u.neighbourhood}", False),
        (f"It {problem} and has done since {u.issue_month}", False),
        ("Could you please arrange a repair in the next two weeks", False),
        (f"I am home on most days except {u.shift_day}", True),
    )
    surname = u.landlord.split(" ", 1)[1]
    return query, Draft(u.landlord, clauses, "Thank you for your help", (surname, thing))


def _thank_you(u: User, rng: random.Random) -> tuple[str, Draft]:
    query = _pick(
        rng,
        "Write a thank-you note to my neighbour for looking after my pet.",
        "Help me thank my neighbour for pet-sitting while I was away.",
    )
    _, pet, habit = u.pet
    clauses = (
        (f"Thank you so much for looking after {pet} while I was away", False),
        (f"I know {pet} {habit}, so I owe you one", False),
        (f"I left a little something from {u.cafe} on your doormat", False),
        ("Let me know when I can return the favour", True),
    )
    return query, Draft(u.neighbour, clauses, f"{pet} says thanks too", (u.neighbour, pet, u.cafe))


def _packing(u: User, rng: random.Random) -> tuple[str, Draft]:
    query = _pick(
        rng,
        "Make a short packing list for my upcoming trip.",
        "What should I pack for my next holiday? Keep it short.",
    )
    dest, activity, gear1, gear2 = u.trip
    clauses = (
        (
            f"Packing list for {dest}: my new {gear1}, the {gear2}, passport, "
            "phone charger and travel adapter",
            False,
        ),
        (f"Do not forget the {gear1}, since I am going to {activity}", False),
        ("Pack light and leave space for presents", True),
    )
    return query, Draft(None, clauses, "", (dest, gear1, gear2))


def _partner(u: User, rng: random.Random) -> tuple[str, Draft]:
    query = _pick(
        rng,
        "Send a quick text to my partner about our plans for tonight.",
        "Write a text to my partner suggesting where we eat tonight.",
    )
    clauses = (
        (f"Shall we go to {u.restaurant[0]} tonight", False),
        (f"I am craving {u.restaurant[1]} food after this week", False),
        (f"I will feed {u.pet[1]} first and meet you there at eight", False),
        ("I will book a table now", True),
    )
    return query, Draft(u.partner, clauses, "I love you", (u.partner, u.restaurant[0], u.pet[1]))


def _coffee(u: User, rng: random.Random) -> tuple[str, Draft]:
    query = _pick(
        rng,
        "Write a message inviting a colleague for coffee after work.",
        "Invite my work friend out for a coffee one day this week.",
    )
    clauses = (
        ("Do you fancy a coffee after work this week", False),
        (f"I know a great spot called {u.cafe} in {u.neighbourhood}", False),
        (f"Any day but {u.shift_day} works for me, since that is my {u.shift}", False),
        ("The cakes there are excellent", True),
    )
    return query, Draft(u.colleague, clauses, "My treat", (u.colleague, u.cafe, u.shift_day))


def _class_invite(u: User, rng: random.Random) -> tuple[str, Draft]:
    query = _pick(
        rng,
        "Invite my best friend to try the evening class I take.",
        "Write a message asking my best friend to join my weekly class.",
    )
    clauses = (
        (f"Do you want to come to my {u.class_name} class on {u.class_day}", False),
        ("The teacher lets newcomers try one session for free", False),
        ("It is relaxed and nobody minds beginners", True),
        (f"We could walk back through {u.park} afterwards", False),
    )
    return query, Draft(
        u.friend, clauses, "No excuses this time", (u.friend, u.class_name, u.class_day)
    )


TASKS: dict[str, Task] = {
    "weekend": _weekend,
    "birthday": _birthday,
    "dinner": _dinner,
    "shift_swap": _shift_swap,
    "landlord": _landlord,
    "thank_you": _thank_you,
    "packing": _packing,
    "partner": _partner,
    "coffee": _coffee,
    "class_invite": _class_invite,
}

# -- styling ---------------------------------------------------------------------------------------

_CONTRACTIONS: tuple[tuple[str, str], ...] = (
    ("I am", "I'm"),
    ("do not", "don't"),
    ("Do not", "Don't"),
    ("Let us", "Let's"),
    ("It is", "It's"),
    ("it is", "it's"),
    ("I will", "I'll"),
    ("cannot", "can't"),
    ("That is", "That's"),
    ("that is", "that's"),
    ("I would", "I'd"),
    ("has not", "hasn't"),
)
_QUESTION = re.compile(r"^(Are|Do(?! not)|Shall|Could|Can|Would|Will)\b")


def _contract(text: str) -> str:
    for full, short in _CONTRACTIONS:
        text = re.sub(rf"\b{full}\b", short, text)
    return text


def _sentence(clause: str, style: str) -> str:
    end = "?" if _QUESTION.match(clause) else ("!" if style == "exclaim" else ".")
    return clause + end


def render(u: User, draft: Draft) -> str:
    """The reference answer in the user's style, with their greeting and sign-off habits."""
    style = u.style
    clauses = [c for c, optional in draft.clauses if not (optional and style == "short")]
    body = " ".join(_sentence(c, style) for c in clauses)
    if style != "formal":
        body = _contract(body)
    if draft.to is None:
        return body
    greeting = {
        "formal": f"Dear {draft.to},",
        "exclaim": f"Hi {draft.to}!",
        "short": f"{draft.to},",
        "ps": f"Hi {draft.to},",
    }[style]
    if style == "formal":
        body += " I look forward to hearing from you."
    text = f"{greeting}\n{body}\n{u.signoff}"
    if style == "ps":
        text += f"\nP.S. {_contract(draft.ps)}."
    return text


# -- the set ---------------------------------------------------------------------------------------


def _has(text: str, fact: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(fact.casefold())}(?!\w)", text.casefold()) is not None


def _check(example: dict[str, object]) -> None:
    output = str(example["output"])
    n_words = len(output.split())
    if not MIN_WORDS <= n_words <= MAX_WORDS:
        raise AssertionError(f"{example['id']}: reference has {n_words} words")
    profile = " \n".join(str(p["text"]) for p in example["profile"])  # type: ignore[attr-defined,index]
    facts: Sequence[str] = example["facts"]  # type: ignore[assignment]
    if not 2 <= len(facts) <= 4:
        raise AssertionError(f"{example['id']}: {len(facts)} facts")
    for fact in facts:
        if fact not in profile or fact not in output:
            raise AssertionError(f"{example['id']}: fact {fact!r} not in profile and output")
        if _has(str(example["input"]), fact):
            raise AssertionError(f"{example['id']}: fact {fact!r} leaks into the input")


def build(seed: int = DEFAULT_SEED, users: int = DEFAULT_USERS) -> list[dict[str, object]]:
    """Draw the examples: ``users`` users, :data:`TASKS_PER_USER` tasks each, checked."""
    rng = random.Random(seed)
    examples: list[dict[str, object]] = []
    task_names = sorted(TASKS)
    order: list[str] = []
    for index in range(1, users + 1):
        if not order:  # every task equally often; the pairs change with each shuffle
            order = rng.sample(task_names, len(task_names))
        user = _draw_user(rng, index)
        profile = [
            {"id": f"{user.user_id}-p{i:02d}", "text": text}
            for i, text in enumerate(_profile_texts(user, rng))
        ]
        tasks, order = order[:TASKS_PER_USER], order[TASKS_PER_USER:]
        for task in tasks:
            query, draft = TASKS[task](user, rng)
            example: dict[str, object] = {
                "id": f"{user.user_id}-{task}",
                "user_id": user.user_id,
                "input": query,
                "profile": profile,
                "output": render(user, draft),
                "facts": list(draft.facts),
                "writer": user.name,
            }
            if draft.to is not None:
                example["recipient"] = draft.to
            _check(example)
            examples.append(example)
    return examples


def render_jsonl(seed: int = DEFAULT_SEED, users: int = DEFAULT_USERS) -> bytes:
    """The dataset file's exact bytes: one JSON object per line, UTF-8."""
    lines = [json.dumps(e, ensure_ascii=False) for e in build(seed, users)]
    return ("\n".join(lines) + "\n").encode("utf-8")


def main(argv: Sequence[str] | None = None) -> None:
    """Write the dataset (see the module docstring for the options)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--users", type=int, default=DEFAULT_USERS)
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(render_jsonl(args.seed, args.users))


if __name__ == "__main__":
    main()
