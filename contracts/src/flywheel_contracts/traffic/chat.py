"""The generic chat workload: policy and how-to questions answered in plain text, no tools.

Questions and answers may name a product, a country or a card number; a few customers paste a
(test) card number, as real ones do, which gives PII redaction something to find.
"""

from random import Random
from typing import Final, NamedTuple

from flywheel_contracts.traffic import vocab


class Topic(NamedTuple):
    """Questions on one subject, and answers that fit any of them."""

    questions: tuple[str, ...]
    answers: tuple[str, ...]


TOPICS: Final = (
    Topic(
        (
            "What is your return policy?",
            "How many days do I have to return something?",
            "Can I return the {product} if I already opened it?",
            "Do returns cost anything?",
        ),
        (
            "You can return most items within 30 days of delivery for a full refund. Opened items "
            "are accepted if they are undamaged and in their original packaging. Return shipping "
            "is free when you use the prepaid label from your account page.",
            "Our return window is 30 days from delivery. Start a return from Orders > Return item, "
            "print the free label, and drop the parcel at any carrier location. Refunds are issued "
            "within 5 business days after we receive it.",
        ),
    ),
    Topic(
        (
            "How long does standard shipping take?",
            "When will my stuff arrive if I order today?",
            "Do you have express delivery?",
            "What are the shipping options?",
        ),
        (
            "Standard shipping takes 3 to 5 business days and is free over $35. Express delivery "
            "arrives in 1 to 2 business days for $12.99. Orders placed before 2pm ship the same day.",
            "We offer standard (3-5 business days, free over $35) and express (1-2 business days, "
            "$12.99). You'll get a tracking link by email as soon as your parcel leaves our warehouse.",
        ),
    ),
    Topic(
        (
            "Do you ship to {country}?",
            "Can I order from {country}?",
            "How much is shipping to {country}?",
        ),
        (
            "Yes, we ship to {country}. International orders usually arrive in 7 to 12 business "
            "days; shipping costs and any import duties are shown at checkout before you pay.",
            "We deliver to {country}. Delivery takes 7-12 business days, and duties are calculated "
            "at checkout so there are no surprises on delivery.",
        ),
    ),
    Topic(
        (
            "Which payment methods do you accept?",
            "Can I pay with PayPal?",
            "Do you take Apple Pay or Google Pay?",
            "Is buy now pay later available?",
        ),
        (
            "We accept Visa, Mastercard, American Express, PayPal, Apple Pay and Google Pay. For "
            "orders over $100 you can also split the payment into 4 interest-free instalments.",
            "You can pay by credit or debit card, PayPal, Apple Pay or Google Pay. Pay-later in 4 "
            "instalments is offered at checkout for orders above $100.",
        ),
    ),
    Topic(
        (
            "My card {card} keeps getting declined, why?",
            "Checkout rejects my card {card}. What should I do?",
            "Why won't you take card number {card}?",
        ),
        (
            "I'm sorry about that. Please never share your full card number in chat. Declines "
            "usually come from a billing address that doesn't match the bank's records or from the "
            "bank's fraud check; try re-entering the address or call your bank, then try again.",
            "For your safety, please don't post card numbers here. Most declines are caused by an "
            "address mismatch or a bank security hold. Check the billing address, or try PayPal or "
            "another card.",
        ),
    ),
    Topic(
        (
            "What warranty does the {product} have?",
            "Is the {product} covered by a warranty?",
            "How do I make a warranty claim?",
        ),
        (
            "All our products come with a 1-year manufacturer's warranty, and electronics get 2 "
            "years. To make a claim, open the order in your account and choose Report a problem; "
            "we'll send a replacement or a repair label.",
            "The warranty is 1 year (2 years for electronics) from delivery. Claims are made from "
            "the order page under Report a problem, with a photo or short description of the fault.",
        ),
    ),
    Topic(
        (
            "How does the loyalty program work?",
            "What do I get with the Plus membership?",
            "Is Premium worth it?",
            "What's the difference between the Basic, Plus and Premium plans?",
        ),
        (
            "Basic is free and earns 1 point per dollar. Plus ($4.99/month) adds free express "
            "shipping and 2 points per dollar. Premium ($9.99/month) adds early access to sales, "
            "3 points per dollar and extended returns of 60 days.",
            "Every account earns points: 1 per dollar on Basic, 2 on Plus and 3 on Premium. Plus "
            "includes free express shipping; Premium also gives 60-day returns and early sale access.",
        ),
    ),
    Topic(
        (
            "Can I change the items in an order after placing it?",
            "I need to add something to my order, is that possible?",
            "Can I change the size on my order?",
        ),
        (
            "Orders can be edited for 30 minutes after they are placed, from the order page. After "
            "that the order is being packed; you can cancel it before it ships and order again.",
            "You have a 30-minute window to edit an order. Once it's being packed, the quickest way "
            "is to cancel before shipping and place a new order.",
        ),
    ),
    Topic(
        (
            "Do you have gift cards?",
            "Can I send a gift card by email?",
            "Do gift cards expire?",
        ),
        (
            "Yes! Digital gift cards from $10 to $500 are delivered by email, on the date you choose. "
            "They never expire and can be used on any product.",
            "Gift cards come in any amount from $10 to $500, are sent by email and never expire.",
        ),
    ),
    Topic(
        (
            "Do you price match?",
            "I saw the {product} cheaper somewhere else. Can you match it?",
            "Will I get the difference if the price drops after I buy?",
        ),
        (
            "We match the price of major retailers on identical items in stock, within 14 days of "
            "your purchase. Send us a link to the offer and we'll refund the difference.",
            "Yes, within 14 days of purchase we refund the difference if the price drops or a major "
            "retailer sells the same item for less.",
        ),
    ),
    Topic(
        (
            "How do I delete my account?",
            "What do you do with my personal data?",
            "Can I download the data you have about me?",
        ),
        (
            "You can download or delete your data under Account > Privacy. Deletion is permanent "
            "and completes within 30 days; we keep invoices only as long as the law requires.",
            "Under Account > Privacy you can export everything we store about you or delete your "
            "account. We never sell personal data.",
        ),
    ),
    Topic(
        (
            "What sizes does the {product} come in?",
            "How do I know which size to pick?",
            "Do your clothes run small?",
        ),
        (
            "Each product page has a size chart with measurements in cm and inches. Our clothing "
            "fits true to size; if you're between sizes, we recommend the larger one.",
            "Check the size chart on the product page. Most customers find our sizes true to fit, "
            "and exchanges for a different size are free.",
        ),
    ),
    Topic(
        (
            "Hi, are you a bot?",
            "Can I talk to someone?",
            "What are your support hours?",
        ),
        (
            "I'm the virtual assistant and I'm here 24/7. Human agents are available Monday to "
            "Friday, 8am to 8pm, and Saturdays 9am to 5pm; I can arrange a callback if you like.",
            "I'm an automated assistant. Our team is reachable by phone or chat Monday-Friday "
            "8am-8pm and Saturday 9am-5pm.",
        ),
    ),
    Topic(
        (
            "Do you have a student discount?",
            "Are there any promotions right now?",
            "How do I get a discount code?",
        ),
        (
            "Students get 10% off with a verified student email. Newsletter subscribers receive a "
            "15% welcome code, and seasonal promotions are listed on the Deals page.",
            "Sign up to the newsletter for a 15% welcome code; students save 10% after verifying "
            "their school email. Current offers are on the Deals page.",
        ),
    ),
)

_FOLLOW_UPS: Final = (
    Topic(
        ("Thanks! And how long does the refund take?", "OK. How long until I see the money?"),
        (
            "Refunds reach your account within 5 business days after we process the return; some "
            "banks take a few extra days to show it.",
        ),
    ),
    Topic(
        ("Great, is that the same for sale items?", "Does that also apply to items on sale?"),
        (
            "Yes, the same rules apply to sale items, except final-sale products, which are marked "
            "on their product page.",
        ),
    ),
    Topic(
        ("Got it, thank you!", "Perfect, thanks for your help.", "thanks"),
        (
            "You're welcome! Is there anything else I can help you with?",
            "Happy to help. Have a great day!",
        ),
    ),
)

_PREAMBLES: Final = (
    "",
    "",
    "",
    "Quick question. ",
    "I'm new here. ",
    "I'm shopping for a gift. ",
    "I've been a customer for years. ",
    "Sorry if this was asked before. ",
    "I couldn't find this on the website. ",
    "My sister recommended your store. ",
)
_COUNTRIES: Final = (
    "Canada",
    "the United Kingdom",
    "Germany",
    "the Netherlands",
    "Australia",
    "Japan",
    "Mexico",
)
# Luhn-valid numbers that card networks reserve for testing, in the spacings people type.
_TEST_CARDS: Final = (
    "4111 1111 1111 1111",
    "5555-5555-5555-4444",
    "4012888888881881",
    "3782 822463 10005",
)


def exchange(rng: Random, follow_up: bool) -> tuple[str, str]:
    """A question and its answer; a follow-up question only makes sense after an earlier one."""
    topic = rng.choice(_FOLLOW_UPS if follow_up else TOPICS)
    # One draw of the slots for both texts, so the answer names what the question named.
    slots = {
        "product": rng.choice(vocab.PRODUCTS).name,
        "country": rng.choice(_COUNTRIES),
        "card": rng.choice(_TEST_CARDS),
    }
    question = rng.choice(topic.questions).format(**slots)
    if not follow_up:
        question = rng.choice(_PREAMBLES) + question
    return question, rng.choice(topic.answers).format(**slots)
