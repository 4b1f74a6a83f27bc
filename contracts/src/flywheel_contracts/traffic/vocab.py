"""Word lists the utterances draw from: people, places, products, codes.

Kept apart from the templates so the phrasing can grow without touching the data, and the other
way round. Every value here may end up verbatim in a tool argument.
"""

from types import MappingProxyType
from typing import Final, NamedTuple

FIRST_NAMES: Final = (
    "Maria",
    "James",
    "Aisha",
    "Chen",
    "Olivia",
    "Mateo",
    "Priya",
    "Lukas",
    "Fatima",
    "Noah",
    "Sofia",
    "Kwame",
    "Emma",
    "Hiroshi",
    "Zoe",
    "Diego",
    "Ingrid",
    "Omar",
    "Chloe",
    "Ravi",
    "Hannah",
    "Tomasz",
    "Amara",
    "Liam",
    "Yuki",
    "Isabel",
    "Erik",
    "Leila",
    "Daniel",
    "Ana",
    "Grace",
    "Mohammed",
    "Elena",
    "Samuel",
    "Nadia",
    "Jonas",
    "Camille",
    "Ethan",
    "Mei",
    "Pablo",
)
LAST_NAMES: Final = (
    "Lopez",
    "Smith",
    "Khan",
    "Wang",
    "Johnson",
    "Garcia",
    "Patel",
    "Muller",
    "Haddad",
    "Brown",
    "Rossi",
    "Mensah",
    "Dubois",
    "Tanaka",
    "Nguyen",
    "Fernandez",
    "Larsen",
    "Farouk",
    "Martin",
    "Sharma",
    "Kowalski",
    "Okafor",
    "Murphy",
    "Sato",
    "Silva",
    "Andersson",
    "Rahimi",
    "Cohen",
    "Kim",
    "Novak",
    "Evans",
    "Ali",
    "Petrov",
    "Walker",
    "Costa",
    "Becker",
    "Moreau",
    "Clarke",
)
EMAIL_DOMAINS: Final = (
    "gmail.com",
    "outlook.com",
    "yahoo.com",
    "icloud.com",
    "proton.me",
    "example.org",
    "mail.de",
)


class Country(NamedTuple):
    """Addresses are drawn per country so that street, city and postal code fit together."""

    name: str
    cities: tuple[str, ...]
    postal_format: str  # '#' is a digit, 'A' an upper-case letter
    streets: tuple[str, ...]
    number_first: bool  # "12 Main Street" rather than "Hauptstrasse 12"


COUNTRIES: Final = (
    Country(
        "United States",
        ("Austin", "Denver", "Portland", "Chicago", "Atlanta", "Seattle"),
        "#####",
        ("Maple Avenue", "Oak Street", "Sunset Boulevard", "Cedar Lane", "Lakeview Drive"),
        True,
    ),
    Country(
        "Canada",
        ("Toronto", "Vancouver", "Montreal", "Calgary"),
        "A#A #A#",
        ("King Street West", "Robson Street", "Rue Sainte-Catherine", "Bay Street"),
        True,
    ),
    Country(
        "United Kingdom",
        ("London", "Manchester", "Leeds", "Bristol"),
        "AA# #AA",
        ("Baker Street", "Deansgate", "Park Lane", "Station Road"),
        True,
    ),
    Country(
        "Germany",
        ("Berlin", "Hamburg", "Munich", "Cologne"),
        "#####",
        ("Hauptstrasse", "Lindenallee", "Bahnhofstrasse", "Gartenweg"),
        False,
    ),
    Country(
        "Netherlands",
        ("Amsterdam", "Utrecht", "Rotterdam"),
        "#### AA",
        ("Prinsengracht", "Keizersgracht", "Oudegracht"),
        False,
    ),
    Country(
        "Australia",
        ("Sydney", "Melbourne", "Brisbane"),
        "####",
        ("George Street", "Collins Street", "Queen Street"),
        True,
    ),
)


class Product(NamedTuple):
    """A catalogue item the customer may ask about by id or by name."""

    product_id: str
    name: str
    category: str


PRODUCTS: Final = (
    Product("PRD-10231", "Aurora wireless earbuds", "electronics"),
    Product("PRD-10457", "Nimbus 4K action camera", "electronics"),
    Product("PRD-11802", "Pulse fitness tracker", "electronics"),
    Product("PRD-12019", "Volt 65W USB-C charger", "electronics"),
    Product("PRD-20114", "Brewmaster drip coffee maker", "home"),
    Product("PRD-20561", "Cloudrest memory foam pillow", "home"),
    Product("PRD-21337", "Ironclad cast iron skillet", "home"),
    Product("PRD-30090", "Trailblazer rain jacket", "clothing"),
    Product("PRD-30452", "Merino crew neck sweater", "clothing"),
    Product("PRD-31876", "Everyday slim-fit chinos", "clothing"),
    Product("PRD-40218", "Summit 40L hiking backpack", "sports"),
    Product("PRD-40773", "Stride trail running shoes", "sports"),
    Product("PRD-41509", "Flex yoga mat", "sports"),
    Product("PRD-50032", "Glow vitamin C serum", "beauty"),
    Product("PRD-50640", "Silk argan hair oil", "beauty"),
    Product("PRD-60117", "Galaxy building blocks set", "toys"),
    Product("PRD-60489", "Rally remote control car", "toys"),
    Product("PRD-61250", "Wildlife jigsaw puzzle", "toys"),
)

# Lower-case on purpose: department names are the enum cues and must not collide with queries.
# Plural or mass nouns, so every template reads well; lower-case, so no query contains a
# department name (the category cues).
SEARCH_QUERIES: Final = MappingProxyType(
    {
        "electronics": (
            "noise cancelling headphones",
            "waterproof phone cases",
            "mechanical keyboards",
            "portable speakers",
            "smartwatches",
            "baby monitors",
        ),
        "home": (
            "desk lamps",
            "non-stick frying pans",
            "linen bed sheets",
            "smoothie blenders",
            "cordless vacuums",
        ),
        "clothing": ("winter coats", "wool socks", "kids raincoats", "linen shirts"),
        "sports": ("running shorts", "two-person tents", "resistance bands", "cycling gloves"),
        "beauty": ("electric toothbrushes", "gift sets", "sunscreen for sensitive skin"),
        "toys": ("board games for teens", "wooden train sets", "puzzles for toddlers"),
    }
)

DISCOUNT_CODES: Final = (
    "SAVE10",
    "WELCOME15",
    "SPRING25",
    "FREESHIP",
    "VIP20",
    "STUDENT10",
    "BDAY5",
    "FLASH30",
)

ESCALATION_ISSUES: Final = (
    "being charged twice for the same order",
    "a delivery that was left at the wrong address",
    "my account being locked after a password reset",
    "a warranty claim nobody has answered for two weeks",
    "a refund that still has not reached my bank",
    "a rude delivery driver",
    "a gift card that shows a zero balance",
    "a missing item from a bundle I bought",
    "an order marked delivered that I never got",
    "a subscription I cancelled but am still paying for",
)

# Fictional numbers only (555 ranges and the UK drama range), in the formats people type.
PHONE_FORMATS: Final = (
    "+1 415-555-0###",
    "(312) 555-0###",
    "415.555.0###",
    "+44 20 7946 0###",
    "+1 (646) 555-0###",
)
