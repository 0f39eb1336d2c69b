"""Customer-support dialogue templates for the demo data set (a fictional shop, "Brightline").

Each intent is a small table of customer openers, agent replies and follow-up turns; the
slots ({product}, {order}, ...) are filled by `datagen`. This module holds wording only:
no randomness, no file I/O. Agent replies stay short and always end with a next step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SHOP = "Brightline"

PRODUCTS = (
    "AeroBuds Pro earbuds", "Nimbus 14 laptop", "Pulse smartwatch", "Terra hiking backpack",
    "Volt 20K power bank", "Echo Mini speaker", "Lumen desk lamp", "Glide wireless mouse",
    "Orbit phone case", "Summit water bottle", "Breeze air purifier", "Cinder coffee grinder",
    "Nova 4K monitor", "Drift office chair", "Spark electric kettle", "Halo ring light",
)
GADGETS = tuple(p for p in PRODUCTS if p.split()[-1] in (
    "earbuds", "laptop", "smartwatch", "bank", "speaker", "mouse", "monitor", "light"))
CARRIERS = ("UPS", "DHL", "FedEx", "the postal service")
PAYMENT_METHODS = ("Visa card", "Mastercard", "PayPal account", "Apple Pay", "gift card", "debit card")
DEVICES = ("iPhone", "Android phone", "Windows laptop", "MacBook", "iPad", "Chromebook")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
PLANS = ("Brightline Plus", "Brightline Premium")

SYSTEM_PROMPTS = (
    f"You are the customer support assistant for {SHOP}, an online electronics and home store. "
    "Be concise and friendly, and always tell the customer the next step.",
    f"You are a helpful support agent for {SHOP}. Answer in two or three short sentences.",
    f"You work in {SHOP} customer care. Be polite, solve the problem, and never ask for a full card number.",
)


@dataclass(frozen=True)
class Case:
    """One situation within an intent: ways a customer raises it and fitting agent answers."""

    openers: tuple[str, ...]
    """First customer messages (may use slots)."""
    replies: tuple[str, ...]
    """Agent answers once all details are known."""
    follow_ups: tuple[tuple[str, str], ...] = ()
    """(customer, agent) pairs that continue this case."""
    vague: tuple[str, ...] = ()
    """Openers without an order number: the agent asks for it first."""


@dataclass(frozen=True)
class Intent:
    """One support intent: its cases and follow-ups that fit any of them."""

    name: str
    """Intent label stored with each generated dialogue."""
    cases: tuple[Case, ...]
    """Situations of this intent."""
    follow_ups: tuple[tuple[str, str], ...] = field(default=())
    """(customer, agent) pairs that can follow any case."""


ASK_ORDER = (
    "I can help with that. Could you share your order number? It starts with BL and is in your confirmation email.",
    "Happy to check. What is your order number? You can find it in the confirmation email.",
    "Sure! Please send me the order number (for example BL-12345) so I can look it up.",
)
GIVE_ORDER = ("it's {order}", "Order number is {order}", "{order}", "sure, {order}", "here: {order}")

THANKS = (
    ("thanks!", "You're welcome! Is there anything else I can help you with?"),
    ("ok thank you", "Glad I could help. Have a great day!"),
    ("great, thats all", "Thanks for contacting Brightline support. Have a nice day!"),
)

INTENTS: tuple[Intent, ...] = (
    Intent("order_status", cases=(
        Case(("Where is my order {order}?", "Hi, can you tell me the status of order {order}?",
              "I ordered the {product} last week and still have no update. Order {order}.",
              "Has my order {order} shipped yet?", "Can you check order {order} for me please"),
             ("Thanks for waiting! Order {order} ({product}) shipped on {weekday} with {carrier}. It should arrive "
              "in {days} business days. You can track it from the link in your shipping email.",
              "Order {order} is on its way with {carrier} and is expected on {weekday}. If it has not arrived by "
              "then, reply here and I will open a trace."),
             vague=("Where is my order?", "hi, when will my stuff arrive", "I haven't received my {product} yet",
                    "can you check my order status")),
        Case(("What's happening with my order {order}? It still says processing.",
              "order {order} has said processing for {days} days, why?"),
             ("I checked order {order}: it is packed and leaves our warehouse tomorrow. You will get an email with "
              "the tracking number as soon as it ships.",
              "Sorry for the wait! Order {order} is being packed today. You will get a tracking email from "
              "{carrier} within 24 hours."),
             vague=("my order still says processing",)),
        Case(("the tracking for {order} hasn't updated in {days} days",
              "My tracking number for order {order} doesn't work"),
             ("Tracking can take up to 24 hours to update. I checked with {carrier} and order {order} is moving "
              "and due on {weekday}. If it does not update by then, I will open a trace.",),),
    ), follow_ups=(
        ("Can I change the delivery address?",
         "If the parcel has not left the warehouse, yes. Send me the new address and I will update it right away."),
    )),
    Intent("shipping", cases=(
        Case(("How long does shipping take to {city}?", "how fast is delivery to {city}",
              "How long will it take to get my {product} to {city}?"),
             ("Standard shipping to {city} takes 3 to 5 business days and express takes 1 to 2. Orders over $50 "
              "ship free. You can choose the option at checkout.",)),
        Case(("Do you ship to {country}?", "can I order from {country}", "Do you deliver internationally?"),
             ("Yes, we ship to {country}. International delivery usually takes 7 to 12 business days, and any "
              "import fees are shown at checkout.",)),
        Case(("How much is express shipping?", "Is shipping free?", "what does delivery cost"),
             ("Standard shipping is free on orders over $50, otherwise it costs $4.99. Express costs $12.99 and "
              "arrives in 1 to 2 business days if you order before 2 pm.",)),
        Case(("my package {order} says delivered but it's not here", "Tracking says delivered but I got nothing. "
              "Order {order}"),
             ("I'm sorry your parcel is missing. Please check with neighbours and your building's mailroom first. "
              "If it is still not there in 24 hours, reply here and I will open a claim with {carrier}.",),
             follow_ups=(("still nothing",
                          "Thanks for checking. I have opened a claim with {carrier} and will send a replacement "
                          "or a refund within 3 business days, whichever you prefer."),)),
    ), follow_ups=(
        ("what if im not home?",
         "{carrier} will leave a notice and try again the next business day, or you can pick it up at a nearby "
         "collection point."),
    )),
    Intent("refund_return", cases=(
        Case(("I want to return my {product}.", "the {product} doesn't fit what I need, can I send it back",
              "How do I return the {product}?"),
             ("You can return any item within 30 days of delivery. Go to Orders, choose {order} and click Return "
              "item to print a free label. Your refund is sent 3 to 5 days after we receive it.",),
             follow_ups=(("do I have to pay for the return shipping?",
                          "No, return shipping is free for all orders. Just use the prepaid label from your email."),
                         ("Can I exchange it instead?",
                          "Yes. Choose Exchange instead of Refund on the return page, and we will ship the new item "
                          "as soon as the return is scanned.")),
             vague=("how do i return an item", "I want to send back my order")),
        Case(("The {product} arrived broken, I want my money back", "My {product} came damaged. Order {order}",
              "the box was crushed and the {product} is cracked"),
             ("I'm sorry the {product} arrived damaged. I have started a free return for order {order}; the label "
              "is in your email. Would you like a refund or a replacement?",),
             follow_ups=(("a replacement please",
                          "Done! A replacement {product} will ship within 2 business days. Please send the damaged "
                          "one back with the prepaid label."),
                         ("refund please",
                          "Your refund will be issued as soon as the return is scanned, usually within 3 days. It "
                          "goes back to your {payment}."))),
        Case(("When will I get my refund for {order}?", "I returned order {order} but no refund yet"),
             ("Your refund for order {order} was issued on {weekday}. It can take 5 to 10 business days to show "
              "on your {payment}.",),
             vague=("where is my refund",)),
        Case(("Can I return something I bought {days} months ago?", "is it too late to return my {product}?"),
             ("Returns are accepted within 30 days of delivery. If it has been longer, the {product} may still be "
              "covered by its one-year warranty, so I can open a warranty claim for you.",)),
    )),
    Intent("payment", cases=(
        Case(("My payment keeps getting declined", "checkout won't accept my {payment}",
              "Why can't I pay with my {payment}?"),
             ("Sorry for the trouble. Please check that the billing address matches the one your bank has, then "
              "try again. If it still fails, your bank may be blocking the payment, so a quick call to them usually "
              "fixes it.",),
             follow_ups=(("it failed again",
                          "Thanks for trying. Please use a different payment method or contact your bank; your cart "
                          "stays saved for 7 days."),)),
        Case(("I was charged twice for order {order}!", "checkout says payment failed but money left my account",
              "there are 2 charges on my card for {order}"),
             ("I see two charges for order {order}. One of them is a temporary hold that will disappear within 3 "
              "to 5 business days. If it is still there after that, reply here and I will refund it.",)),
        Case(("Do you accept {payment}?", "what payment methods do you take"),
             ("We accept Visa, Mastercard, PayPal, Apple Pay and Brightline gift cards. Choose one on the payment "
              "page at checkout.",)),
        Case(("can i pay in installments", "Can I split the payment for the {product}?"),
             ("Yes, you can split orders over $100 into four payments at checkout. Choose Pay in 4 on the payment "
              "page.",)),
    ), follow_ups=(
        ("is it safe to give you my card number here?",
         "Please never share your full card number in chat. We only need the last four digits to find a payment."),
    )),
    Intent("billing_pricing", cases=(
        Case(("Why is the {product} cheaper today than when I bought it?", "the {product} went on sale right after "
              "I bought it"),
             ("Prices can change, but we offer price matching for 14 days after purchase. I have refunded the "
              "difference for order {order} to your {payment}.",)),
        Case(("Do you have any discount codes?", "any coupons?", "Is there a student discount?"),
             ("Sign up for our newsletter to get 10% off your first order, and students get 15% off after verifying "
              "a school email. Current promotions are on the Deals page.",)),
        Case(("How much does {plan} cost?", "what do I get with {plan}"),
             ("{plan} costs $9.99 a month or $99 a year and includes free express shipping and extended returns. "
              "You can cancel anytime in your account settings.",)),
        Case(("I need an invoice for order {order}", "can I get a receipt for {order}"),
             ("You can download the invoice for order {order} from Orders, then Invoice. I can also email it to "
              "you if you prefer.",),
             follow_ups=(("can you email it instead",
                          "Of course. I have sent the invoice to the email on your account; it should arrive in a "
                          "few minutes."),)),
        Case(("the price at checkout is higher than on the product page??", "why is my total more than the price"),
             ("The checkout price includes tax and shipping, which are not shown on the product page. You can see "
              "the breakdown by clicking Order summary.",)),
    )),
    Intent("account_login", cases=(
        Case(("I can't log in to my account", "forgot my password, help", "how do I reset my password"),
             ("Let's fix that. Click Forgot password on the sign-in page and we will email you a reset link. The "
              "link works for 30 minutes.",),
             follow_ups=(("the reset link says expired",
                          "Reset links expire after 30 minutes. Please request a new one and open it from the same "
                          "device."),)),
        Case(("I'm not getting the verification code", "the login code never arrives"),
             ("Please check your spam folder for the code, and make sure the email address is spelled correctly. "
              "You can request a new code after 60 seconds.",)),
        Case(("How do I change the email on my account?", "i want to update my email address"),
             ("Go to Account, then Settings, then Email, and enter your new address. We will send a confirmation "
              "link to both addresses.",)),
        Case(("My account is locked", "it says my account is locked??"),
             ("Accounts lock after five wrong passwords. It unlocks by itself after 15 minutes, or you can reset "
              "your password now to unlock it right away.",)),
        Case(("how do i delete my account", "Please delete my account and my data"),
             ("I'm sorry to see you go. You can delete your account under Account, Privacy, Delete account. Open "
              "orders must be finished first.",)),
    ), follow_ups=(
        ("still not working",
         "Thanks for your patience. Please try a private browser window; if that fails, I can send a reset link "
         "from our side to the email on your account."),
    )),
    Intent("technical", cases=(
        Case(("My {gadget} won't turn on", "the {gadget} is dead, nothing happens when i press the button"),
             ("Sorry about that. Please charge the {gadget} for at least 30 minutes, then hold the power button "
              "for 10 seconds to restart it. If it still does not turn on, I can start a warranty replacement.",)),
        Case(("The {gadget} is not connecting to my {device}", "cant pair {gadget} with {device}"),
             ("Let's try this: turn Bluetooth off and on on your {device}, forget the {gadget} in the Bluetooth "
              "list, then pair it again. Keep the two devices close together while pairing.",)),
        Case(("the Brightline app keeps crashing on my {device}", "app crashes every time I open it"),
             ("Please update the Brightline app to the latest version and restart your {device}. If it still "
              "crashes, reinstall the app; your settings are saved in your account.",)),
        Case(("My {gadget} battery drains really fast", "battery on the {gadget} dies in a few hours"),
             ("Battery life improves after the latest firmware update. Open the Brightline app, go to Device, then "
              "Update. Lower brightness and volume also help.",)),
        Case(("How do I update the firmware on my {gadget}?", "{gadget} stopped working after the update"),
             ("Open the Brightline app, select your {gadget} and tap Check for updates. Keep it charged above 50% "
              "during the update, then restart it.",)),
    ), follow_ups=(
        ("I tried that already",
         "Thanks for trying. The next step is a factory reset: hold the power and volume buttons together for 15 "
         "seconds. If that does not help, I will arrange a free replacement."),
        ("is it still under warranty?",
         "All our products have a one-year warranty from the delivery date, so yes, it is covered."),
    )),
    Intent("cancellation", cases=(
        Case(("Please cancel my order {order}", "Can I still cancel order {order}? I ordered it by mistake",
              "cancel {order} pls, found it cheaper elsewhere"),
             ("Done. Order {order} is cancelled and you will get a full refund to your {payment} within 3 to 5 "
              "business days.",
              "Order {order} has already shipped, so I can't cancel it. When it arrives you can return it for free "
              "within 30 days."),
             follow_ups=(("will I get charged anything?", "No, there is no cancellation fee."),),
             vague=("I want to cancel my order", "pls cancel my order")),
        Case(("I want to cancel my {plan} subscription", "how do I stop {plan}"),
             ("You can cancel {plan} under Account, Subscriptions. You keep the benefits until the end of the "
              "current billing period.",)),
    )),
    Intent("product_question", cases=(
        Case(("Is the {product} waterproof?", "can the {product} get wet"),
             ("The {product} is splash resistant but not waterproof, so please keep it away from water.",)),
        Case(("Does the {product} come with a warranty?", "whats the warranty on the {product}"),
             ("Yes, the {product} has a one-year warranty, and {plan} members get two years.",)),
        Case(("Is the {product} in stock?", "when will the {product} be back in stock"),
             ("The {product} is in stock and ships within 24 hours. Add it to your cart to reserve it.",
              "The {product} is sold out right now and back in about {days} weeks. Tap Notify me on its page to "
              "get an email when it returns.")),
        Case(("Is the {gadget} compatible with my {device}?", "will the {gadget} work with a {device}"),
             ("Yes, the {gadget} works with any {device} that has Bluetooth 5.0 or later.",)),
        Case(("Does the {product} come in other colours?", "what colors does the {product} come in"),
             ("The {product} comes in black, white and blue. Choose the colour on the product page before adding "
              "it to your cart.",)),
    ), follow_ups=(
        ("ok I'll order it", "Great choice! Let me know if you have any questions about your order."),
    )),
)

CITIES = ("London", "Berlin", "Toronto", "Sydney", "Austin", "Chicago", "Dublin", "Madrid", "Boston", "Denver")
COUNTRIES = ("Canada", "Germany", "France", "Australia", "Japan", "Mexico", "Ireland", "Spain", "Italy", "Brazil")
