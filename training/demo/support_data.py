"""Customer-support dialogue templates for the demo data set (a fictional shop, "Brightline").

Each intent is a small table of customer openers, agent replies and follow-up turns; the
slots ({product}, {order}, ...) are filled by `datagen`. Shop policy numbers are never written here:
a reply says `{return_window}` and `datagen` fills it from the help-center articles
(`training.demo.shop_facts`), the single source of shop facts. A case's `grounded` replies are the
real-model set's answers: they state only what its `source` passages say and what the customer wrote
(the demo `replies` may make up order details: the demo model gets no context). Order answers come
from an order record (`ORDER_REPLIES`, ... filled from `serving.context.orders.Order`). This module
holds wording only: no randomness, no file I/O.
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
    """Agent answers once all details are known (the demo set)."""
    follow_ups: tuple[tuple[str, str], ...] = ()
    """(customer, agent) pairs that continue this case."""
    vague: tuple[str, ...] = ()
    """Openers without an order number: the agent asks for it first."""
    source: tuple[str, ...] = ()
    """Passages (`shop/<file>#<anchor>`) the grounded replies rest on: a grounded dialogue is kept only when
    retrieval put every one of them in its context."""
    grounded: tuple[str, ...] = ()
    """Real-model answers: only facts of `source` and slots the customer's message names; none: not used there."""
    grounded_openers: tuple[str, ...] = ()
    """Openers of the real-model set when `openers` do not fit `grounded` (default: `openers`)."""
    order_status: tuple[str, ...] = ()
    """When an opener names an order: the statuses the named order may have (none: any)."""
    style: str = ""
    """How the grounded answer is laid out, when the persona asks for a layout (`task_metric.STYLES`)."""

    def real_openers(self) -> tuple[str, ...]:
        return self.grounded_openers or self.openers


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
              "{carrier} within {processing_within}."),
             vague=("my order still says processing",)),
        Case(("the tracking for {order} hasn't updated in {days} days",
              "My tracking number for order {order} doesn't work"),
             ("Tracking can take up to {tracking_delay} to update. I checked with {carrier} and order {order} is "
              "moving and due on {weekday}. If it does not update by then, I will open a trace.",),),
    ), follow_ups=(
        ("Can I change the delivery address?",
         "If the parcel has not left the warehouse, yes. Send me the new address and I will update it right away."),
    )),
    Intent("shipping", cases=(
        Case(("How long does shipping take to {city}?", "how fast is delivery to {city}",
              "how many days does delivery to {city} usually take?",
              "I live in {city}. If I order today, how long until it gets to me?",
              "What are your delivery times for {city}?", "shipping time to {city}?",
              "I'm ordering a birthday present for my sister in {city} and her party is next week. How long does "
              "standard delivery take there, and is express quicker?",
              "Could you tell me how long it takes for a parcel to reach {city}?",
              "I was wondering how quickly you can get an order to {city}.", "delivery to {city}, how long roughly",
              "We just moved to {city}. What's the usual wait for a package from you?",
              "Need the {product} in {city} soon. How long does postage take?",
              "How long will it take to get my {product} to {city}?"),
             ("Standard shipping to {city} takes {standard_days} business days and express takes {express_days}. "
              "Orders over {free_over} ship free. You can choose the option at checkout.",),
             source=("shop/shipping.md#delivery-times",),
             grounded=("Standard shipping to {city} takes {standard_days} business days and express takes "
                       "{express_days} business days. You choose the option at checkout.",)),
        Case(("Do you ship to {country}?", "can I order from {country}",
              "I'm based in {country}, can I still buy from you?", "Would you be able to send a parcel to {country}?",
              "ship to {country}?", "Do you ship abroad?",
              "My brother lives in {country} and I'd like to send him the {product} directly. Is that possible?",
              "Quick question: do you take orders from other countries?",
              "Can I have my order delivered to {country}, and roughly how long would it take?",
              "If I order to {country}, will I have to pay import fees?", "how long does international delivery take",
              "Hi from {country}! Do you deliver here?", "Do you deliver internationally?"),
             ("Yes, we ship to {country}. International delivery usually takes {international_days} business days, "
              "and any import fees are shown at checkout.",),
             source=("shop/shipping.md#international-shipping",),
             grounded=("Yes, we ship to many countries. International delivery usually takes {international_days}"
                       " business days, and any import fees are shown at checkout before you pay.",)),
        Case(("How much is express shipping?", "Is shipping free?", "how much is postage?", "express cost?",
              "What do you charge for standard delivery?",
              "Do I have to pay for shipping if I spend over a certain amount?",
              "I'm only buying the {product}, will shipping be extra?", "Could you tell me your shipping fees?",
              "what's the minimum order for free delivery",
              "I'd like the {product} fast. What does express delivery cost?",
              "Is there a charge for delivery, or is it included?",
              "About to place my first order. What will shipping cost me?", "what does delivery cost"),
             ("Standard shipping is free on orders over {free_over}, otherwise it costs {standard_cost}. Express "
              "costs {express_cost} and "
              "arrives in {express_days} business days if you order before {express_cutoff}.",),
             source=("shop/shipping.md#shipping-costs",),
             grounded=("Standard shipping is free on orders over {free_over}, otherwise it costs {standard_cost}."
                       " Express shipping costs {express_cost} on any order.",)),
        Case(("my package {order} says delivered but it's not here",
              "Order {order} shows as delivered but there's no parcel at my door.",
              "the carrier says they dropped off {order} yesterday, I never got it",
              "I've been home all day and the tracking claims my package was delivered. It wasn't. {order}",
              "My parcel {order} is marked delivered, but it's nowhere to be found. What should I do?",
              "Hello, I think my package was stolen or left at the wrong house. The tracking for {order} says "
              "delivered.", "delivered status but no package??",
              "Could you help me? The {product} from order {order} was supposedly delivered this morning, but I "
              "can't find it anywhere.",
              "I ordered a gift for my mum and the tracking says it arrived, but nothing came. What can I do?",
              "Marked as delivered, never received. Order {order}.",
              "What do I do when the tracking says delivered and the parcel isn't there?",
              "Tracking says delivered but I got nothing. Order {order}"),
             ("I'm sorry your parcel is missing. Please check with neighbours and your building's mailroom first. "
              "If it is still not there in {missing_wait}, reply here and I will open a claim with {carrier}.",),
             follow_ups=(("still nothing",
                          "Thanks for checking. I have opened a claim with {carrier} and will send a replacement "
                          "or a refund within {claim_days}, whichever you prefer."),),
             source=("shop/order-status.md#parcel-marked-delivered-but-not-received",),
             order_status=("delivered",),
             grounded=("I'm sorry your parcel is missing. Please check with your neighbours and your building's "
                       "mailroom first. If it is still missing {missing_wait} after it was marked delivered, "
                       "contact support: we open a claim with the carrier and send a replacement or a refund "
                       "within {claim_days}.",)),
    ), follow_ups=(
        ("what if im not home?",
         "{carrier} will leave a notice and try again the next business day, or you can pick it up at a nearby "
         "collection point."),
    )),
    Intent("refund_return", cases=(
        Case(("I want to return my {product}.", "the {product} doesn't fit what I need, can I send it back",
              "How do I send back the {product}?", "I'd like to return an item, what's the process?",
              "return the {product}, how?", "Changed my mind about the {product}. Can I return it, and how?",
              "I got the {product} as a gift for my dad but he already has one. How can I send it back?",
              "What are the steps to return something I bought?",
              "Could you explain how returns work? I want to send back the {product}.",
              "I was wondering how returning an order works and when I'd get my money back.",
              "The {product} isn't for me. How do I get a return label?",
              "can I send my stuff back if I don't like it?", "How do I return the {product}?"),
             ("You can return any item within {return_window} of delivery. Go to Orders, choose {order} and click "
              "Return item to print a free label. Your refund is sent {return_refund_days} days after we receive it.",),
             follow_ups=(("do I have to pay for the return shipping?",
                          "No, return shipping is free for all orders. Just use the prepaid label from your email."),
                         ("Can I exchange it instead?",
                          "Yes. Choose Exchange instead of Refund on the return page, and we will ship the new item "
                          "as soon as the return is scanned.")),
             vague=("how do i return an item", "I want to send back my order"),
             source=("shop/returns.md#return-window", "shop/returns.md#how-to-return-an-item"),
             grounded=("You can return any item within {return_window} of delivery. Go to Orders, choose the "
                       "order and click Return item to print a free label. Your refund is sent "
                       "{return_refund_days} days after we receive the item.",)),
        Case(("The {product} arrived broken, I want my money back", "My {product} came damaged. Order {order}",
              "My {product} arrived with a crack in it. What can you do?",
              "the {product} was smashed when I opened the parcel",
              "broken {product} on arrival, refund or replacement?",
              "I just unpacked the {product} and it's damaged. Order {order}.",
              "Hello, I bought the {product} as a birthday present and it came scratched and dented. Can I get a new "
              "one?", "Received a damaged {product}. What now?",
              "The {product} I ordered was broken when it arrived, I'd like a replacement please.",
              "Not happy: my {product} came damaged in the post.",
              "The courier must have dropped the box, the {product} inside is broken.",
              "damaged {product} in my delivery, can you send another one?",
              "the box was crushed and the {product} is cracked"),
             ("I'm sorry the {product} arrived damaged. I have started a free return for order {order}; the label "
              "is in your email. Would you like a refund or a replacement?",),
             follow_ups=(("a replacement please",
                          "Done! A replacement {product} will ship within {replacement_days}. Please send the damaged "
                          "one back with the prepaid label."),
                         ("refund please",
                          "Your refund will be issued as soon as the return is scanned, usually within "
                          "{refund_scan_days}. It goes back to your {payment}.")),
             source=("shop/returns.md#damaged-or-broken-items",),
             order_status=("delivered",),
             grounded=("I'm sorry the {product} arrived damaged. We start a free return and you choose a refund "
                       "or a replacement; a replacement ships within {replacement_days}. Send the damaged item "
                       "back with the prepaid label.",)),
        Case(("When will I get my refund for {order}?", "My refund for {order} still hasn't shown up.",
              "I sent back order {order} two weeks ago, where's my money?", "refund for {order}?",
              "How long until the refund for order {order} reaches my card?",
              "Could you check on my refund for {order}? I sent everything back.",
              "I returned order {order} and I'm still waiting for the money to come back.",
              "Has the refund for order {order} been processed yet?",
              "I was wondering when the money for my return {order} will be back in my account.",
              "It's been a while since I returned {order} and my bank statement shows nothing yet.",
              "When does the refund for {order} show up on my statement?",
              "I returned order {order} but no refund yet"),
             ("Your refund for order {order} was issued on {weekday}. It can take {refund_show_days} business days "
              "to show on your {payment}.",),
             vague=("where is my refund",),
             source=("shop/refunds.md#how-long-a-refund-takes-to-show",),
             order_status=("returned",),
             grounded=("Order {order} has been returned, so its refund is issued. Once issued, a refund can take "
                       "{refund_show_days} business days to show on your statement, depending on your bank.",)),
        Case(("Can I return something I bought {days} months ago?",
              "I bought the {product} {days} months ago, can I still send it back?",
              "What's the time limit for returns?", "how long do I have to return something",
              "Is there a deadline for returning an item?",
              "I got the {product} {days} months ago and it has stopped working properly. Can I still return it?",
              "Can I still return the {product}? I've had it for a while now.", "return window?",
              "Are returns still possible after a couple of months?",
              "My {product} has been sitting in its box since I got it {days} months ago. Too late to return it?",
              "How many days after delivery can I send something back?", "is it too late to return my {product}?"),
             ("Returns are accepted within {return_window} of delivery. If it has been longer, the {product} may "
              "still be covered by its {warranty} warranty, so I can open a warranty claim for you.",),
             source=("shop/returns.md#return-window",),
             grounded=("Returns are accepted within {return_window} of delivery. After the return window, a "
                       "faulty item may still be covered by its warranty.",)),
    )),
    Intent("payment", cases=(
        Case(("My payment keeps getting declined", "checkout won't accept my {payment}",
              "my card was declined at checkout, why?", "Payment failed again, what am I doing wrong?",
              "card declined", "I keep trying to buy the {product} but the payment doesn't go through.",
              "Why does my {payment} keep getting rejected?",
              "I've tried three times to pay and it says declined. Will I lose my cart?",
              "Could you help me? Checkout won't take my payment, it just says it was declined.",
              "I was wondering why my payment was refused, there is enough money on the card.",
              "The site keeps declining my {payment} even though it works everywhere else.",
              "Trying to order a present for my girlfriend and the payment keeps failing. Any ideas?",
              "Why can't I pay with my {payment}?"),
             ("Sorry for the trouble. Please check that the billing address matches the one your bank has, then "
              "try again. If it still fails, your bank may be blocking the payment, so a quick call to them usually "
              "fixes it.",),
             follow_ups=(("it failed again",
                          "Thanks for trying. Please use a different payment method or contact your bank; your cart "
                          "stays saved for {cart_days}."),),
             source=("shop/payments.md#declined-payments",),
             grounded=("Please check that the billing address matches the one your bank has, then try again. If "
                       "it still fails, your bank may be blocking the payment, so a quick call to them usually "
                       "fixes it. Your cart stays saved for {cart_days}.",)),
        Case(("I was charged twice for order {order}!", "checkout says payment failed but money left my account",
              "I see two charges for {order} on my statement.", "Why have I been charged twice?",
              "double charge on my card", "My bank app shows the same order twice. Order {order}.",
              "I paid once but the money was taken two times for order {order}. Can you fix this?",
              "Hi, I think I was billed twice for the same order.",
              "There's a duplicate payment for {order} on my {payment}.",
              "Two identical charges from Brightline showed up on my account, can you explain?",
              "The payment failed at checkout, so I paid again, and now both amounts are gone from my account.",
              "charged 2x for {order}??", "there are 2 charges on my card for {order}"),
             ("I see two charges for order {order}. One of them is a temporary hold that will disappear within "
              "{hold_days} business days. If it is still there after that, reply here and I will refund it.",),
             source=("shop/payments.md#charged-twice",),
             grounded=("One of two charges for an order is usually a temporary hold that disappears within "
                       "{hold_days} business days. If it is still there after that, contact support and we refund"
                       " it.",)),
        Case(("Do you accept {payment}?", "Can I pay with {payment}?", "which payment options do you have",
              "Is {payment} accepted at checkout?", "payment methods?", "Do you take debit cards?",
              "I don't have a credit card. How else can I pay?", "Could you tell me what forms of payment you accept?",
              "I'd like to use my {payment} for the {product}, is that possible?",
              "Is there a way to pay without a card?", "What cards can I use to pay for my order?",
              "what payment methods do you take"),
             ("We accept Visa, Mastercard, PayPal, Apple Pay and Brightline gift cards. Choose one on the payment "
              "page at checkout.",),
             source=("shop/payments.md#which-cards-and-payment-methods-we-accept",),
             grounded=("We accept Visa, Mastercard, PayPal, Apple Pay and Brightline gift cards; Visa and "
                       "Mastercard debit cards work too. Choose one on the payment page at checkout.",)),
        Case(("can i pay in installments", "Can I pay for the {product} in parts?",
              "Do you have a buy now, pay later option?", "instalments?",
              "Is it possible to spread the cost over several payments?",
              "The {product} is a bit expensive for me right now. Can I pay it off in a few payments?",
              "Could I pay in instalments instead of all at once?", "Do you offer any payment plans?",
              "How does Pay in 4 work?", "Is there a way to split my order into smaller payments?",
              "can I split the cost of my order", "Can I split the payment for the {product}?"),
             ("Yes, you can split orders over {installments_over} into four payments at checkout. Choose Pay in 4 on "
              "the payment page.",),
             source=("shop/payments.md#paying-in-installments",),
             grounded=("Yes, orders over {installments_over} can be split into four payments with Pay in 4. "
                       "Choose Pay in 4 on the payment page at checkout.",)),
    ), follow_ups=(
        ("is it safe to give you my card number here?",
         "Please never share your full card number in chat. We only need the last four digits to find a payment."),
    )),
    Intent("billing_pricing", cases=(
        Case(("Why is the {product} cheaper today than when I bought it?",
              "I bought the {product} a few days ago and now it's on sale. Can I get the difference back?",
              "Do you refund the difference if the price drops after I buy?", "price dropped after I ordered, refund?",
              "The {product} is cheaper now than what I paid. That's annoying.", "Do you have price protection?",
              "Could I get the difference refunded? The {product} went down in price this week.",
              "I was wondering what happens if something I bought gets cheaper later.",
              "Just saw the {product} at a lower price on your site, I paid more last week.",
              "If the price goes down after I buy, do I get money back?",
              "My friend paid less for the same {product} two days after me. Can I get that price too?",
              "the {product} went on sale right after I bought it"),
             ("Prices can change, but we offer price matching for {price_match_days} after purchase. I have refunded "
              "the difference for order {order} to your {payment}.",),
             source=("shop/pricing.md#price-matching",),
             grounded=("Prices can change, but if an item you bought gets cheaper within {price_match_days} after"
                       " purchase, we refund the difference to your original payment method. Contact support with"
                       " the order number.",)),
        Case(("Do you have any discount codes?", "any coupons?", "Any promo codes at the moment?",
              "Do students get money off?", "Is there a discount for first-time customers?",
              "how can I save money on my first order", "I'm a university student, do you have student pricing?",
              "Are there any deals right now?", "Could you tell me about any current discounts?",
              "Got a voucher code I could use?", "discount?",
              "I'm about to buy the {product} and would love to pay a bit less. Any codes?",
              "Is there a student discount?"),
             ("Sign up for our newsletter to get {newsletter_discount} off your first order, and students get "
              "{student_discount} off after verifying "
              "a school email. Current promotions are on the Deals page.",),
             source=("shop/pricing.md#discounts",),
             grounded=("Sign up for our newsletter to get {newsletter_discount} off your first order, and "
                       "students get {student_discount} off after verifying a school email. Current promotions "
                       "are on the Deals page.",)),
        Case(("How much does {plan} cost?", "what do I get with {plan}"),
             ("{plan} costs {plan_month} a month or {plan_year} a year and includes free express shipping and "
              "extended returns. You can cancel anytime in your account settings.",),
             source=("shop/membership.md#price",),
             grounded_openers=("How much does {plan} cost?", "what's the price of {plan}",
                               "What's the monthly fee for {plan}?", "price of {plan}?",
                               "How much is {plan} per year?", "Can I pay for {plan} yearly instead of monthly?",
                               "I'm thinking of signing up for {plan}. What does it cost?",
                               "Could you tell me the price of a {plan} membership?",
                               "I was wondering how much {plan} is a month.", "how much would {plan} set me back",
                               "Is there a yearly option for {plan}, and how much is it?",
                               "My partner keeps telling me to get {plan}. How much is the subscription?",
                               "is {plan} monthly or yearly?"),
             grounded=("{plan} costs {plan_month} a month or {plan_year} a year. You can switch between monthly "
                       "and yearly billing under Account, Subscriptions.",)),
        Case(("I need an invoice for order {order}", "Where can I download the invoice for {order}?",
              "invoice for {order} please", "I need a receipt for order {order} for my expense report.",
              "Could you send me the invoice for order {order}?",
              "My company needs a proper invoice for {order}. How do I get one?",
              "For my records I need the receipt for {order}. Where is it?",
              "How do I get a copy of the receipt for my order {order}?",
              "I lost the receipt for {order}, can I get another one?", "Can you email me the invoice for {order}?",
              "I bought the {product} as a work expense. Where do I get the invoice for order {order}?",
              "can I get a receipt for {order}"),
             ("You can download the invoice for order {order} from Orders, then Invoice. I can also email it to "
              "you if you prefer.",),
             follow_ups=(("can you email it instead",
                          "Of course. I have sent the invoice to the email on your account; it should arrive in a "
                          "few minutes."),),
             source=("shop/pricing.md#invoices-and-receipts",),
             grounded=("You can download the invoice for order {order} from Orders, then Invoice. Support can "
                       "also email it to the address on your account.",)),
        Case(("the price at checkout is higher than on the product page??",
              "Why is the total at checkout higher than the price I saw?",
              "The {product} says one price but checkout asks for more.",
              "checkout total doesn't match the product price", "Does the price on the product page include tax?",
              "My cart total went up at the last step of checkout.",
              "Where do the extra charges at checkout come from?",
              "Could you explain why I'm paying more than the listed price for the {product}?",
              "Are tax and shipping included in the product price?",
              "The amount at checkout is more than I expected. Where can I see what it's made of?",
              "why do I pay more at checkout??", "why is my total more than the price"),
             ("The checkout price includes tax and shipping, which are not shown on the product page. You can see "
              "the breakdown by clicking Order summary.",),
             source=("shop/pricing.md#checkout-total",),
             grounded=("The checkout price includes tax and shipping, which are not shown on the product page. "
                       "Click Order summary at checkout to see the breakdown.",)),
    )),
    Intent("account_login", cases=(
        Case(("I can't log in to my account", "forgot my password, help", "I forgot my password",
              "Can't remember my password, how do I get back in?", "password reset?",
              "The password reset link doesn't work anymore.",
              "How can I change my password if I don't remember the old one?",
              "Haven't signed in for ages and can't remember my password. How do I reset it?",
              "my login isn't working, I think I have the wrong password", "Could you help me reset my password?",
              "I clicked the reset link from the email but it says it expired.",
              "I need a new password for my account, the old one doesn't work.", "how do I reset my password"),
             ("Let's fix that. Click Forgot password on the sign-in page and we will email you a reset link. The "
              "link works for {reset_link}.",),
             follow_ups=(("the reset link says expired",
                          "Reset links expire after {reset_link}. Please request a new one and open it from the same "
                          "device."),),
             source=("shop/account.md#forgotten-password",),
             grounded=("Click Forgot password on the sign-in page and we email you a reset link. The link works "
                       "for {reset_link}; if it has expired, request a new one and open it on the same device.",)),
        Case(("I'm not getting the verification code", "I never got the sign-in code",
              "Where's my verification code? Nothing in my inbox.", "code not arriving",
              "I've been waiting for the login code email for ages.",
              "The one-time code to sign in doesn't come through.", "Could you send me a new verification code?",
              "I was wondering why the verification email never shows up.",
              "How long do I have to wait before I can ask for a new code?",
              "I'm trying to sign in on my new {device} and the code isn't being sent.",
              "no verification email received", "the login code never arrives"),
             ("Please check your spam folder for the code, and make sure the email address is spelled correctly. "
              "You can request a new code after {code_wait}.",),
             source=("shop/account.md#verification-codes",),
             grounded=("Please check your spam folder for the code, and make sure the email address is spelled "
                       "correctly. You can request a new code after {code_wait}.",)),
        Case(("How do I change the email on my account?", "How can I change my email address?",
              "I have a new email, how do I update it on my account?", "change email",
              "Can I use a different email address for my account?",
              "My old email account got closed. How do I switch my Brightline account to the new one?",
              "Where do I update my contact email?", "Is it possible to move my account to another email address?",
              "Could you tell me how to change the email I sign in with?",
              "I need to change the email on my account, I'm not using the old one anymore.",
              "update email address on account?", "i want to update my email address"),
             ("Go to Account, then Settings, then Email, and enter your new address. We will send a confirmation "
              "link to both addresses.",),
             source=("shop/account.md#changing-your-email-address",),
             grounded=("Go to Account, then Settings, then Email, and enter your new address. We send a "
                       "confirmation link to both the old and the new address.",)),
        Case(("My account is locked", "I'm locked out of my account", "Why is my account locked?",
              "account locked, help", "I typed the wrong password a few times and now I can't get in.",
              "How long until my account unlocks?", "It says too many attempts and my account is blocked.",
              "Could you unlock my account please?", "Is there a way to unlock my account myself?",
              "My account got locked while I was trying to buy the {product}.", "how do I get my account unlocked",
              "it says my account is locked??"),
             ("Accounts lock after {lock_tries} wrong passwords. It unlocks by itself after {unlock_after}, or you "
              "can reset your password now to unlock it right away.",),
             source=("shop/account.md#locked-account",),
             grounded=("An account locks after {lock_tries} wrong passwords. It unlocks by itself after "
                       "{unlock_after}, or you can reset your password to unlock it right away.",)),
        Case(("how do i delete my account", "I want to close my account", "How can I remove my account?",
              "delete account", "Can I delete my Brightline account?",
              "I don't shop with you anymore and want my account gone. How do I do that?",
              "Where's the option to delete my account?", "Please tell me how to permanently close my account.",
              "Could you tell me how to get rid of my account?",
              "I'd like to delete my profile, but I still have an order on the way.", "close my account please",
              "Please delete my account and my data"),
             ("I'm sorry to see you go. You can delete your account under Account, Privacy, Delete account. Open "
              "orders must be finished first.",),
             source=("shop/account.md#deleting-your-account",),
             grounded=("You can delete your account under Account, Privacy, Delete account. Open orders must be "
                       "finished first.",)),
    ), follow_ups=(
        ("still not working",
         "Thanks for your patience. Please try a private browser window; if that fails, I can send a reset link "
         "from our side to the email on your account."),
    )),
    Intent("technical", cases=(
        Case(("My {gadget} won't turn on", "The {gadget} doesn't switch on anymore.", "my {gadget} won't power on",
              "My new {gadget} won't start at all.", "What do I do if the {gadget} won't turn on?",
              "Nothing happens when I try to switch on my {gadget}.", "I was wondering why my {gadget} won't come on.",
              "the {gadget} is completely dead", "My {gadget} was working yesterday and now it won't turn on.",
              "Could you help? The {gadget} I bought won't power up.",
              "I took the {gadget} out of the box and it doesn't turn on.",
              "the {gadget} is dead, nothing happens when i press the button"),
             ("Sorry about that. Please charge the {gadget} for at least {charge_minutes}, then hold the power button "
              "for {restart_seconds} to restart it. If it still does not turn on, I can start a warranty "
              "replacement.",),
             source=("shop/troubleshooting.md#device-does-not-turn-on",),
             grounded=("Please charge the {gadget} for at least {charge_minutes}, then hold the power button for "
                       "{restart_seconds} to restart it. If it still does not turn on, support can start a "
                       "warranty replacement.",)),
        Case(("The {gadget} is not connecting to my {device}", "My {gadget} won't pair with my {device}.",
              "the {gadget} isn't showing up in Bluetooth on my {device}",
              "I can't get the {gadget} to connect to my {device}.",
              "Bluetooth problem: {gadget} and {device} won't connect",
              "The {gadget} keeps disconnecting from my {device}.",
              "I was wondering why my {device} can't find the {gadget}.",
              "Could you help me pair the {gadget} with my {device}? It keeps failing.",
              "{gadget} won't connect to {device}", "I got a new {device} and now the {gadget} won't connect to it.",
              "Pairing the {gadget} with my {device} fails every time.", "cant pair {gadget} with {device}"),
             ("Let's try this: turn Bluetooth off and on on your {device}, forget the {gadget} in the Bluetooth "
              "list, then pair it again. Keep the two devices close together while pairing.",),
             source=("shop/troubleshooting.md#bluetooth-device-will-not-connect-or-pair",),
             grounded=("Turn Bluetooth off and on again on your {device}, forget the {gadget} in the Bluetooth "
                       "list, then pair it again. Keep the two devices close together while pairing.",)),
        Case(("the Brightline app keeps crashing on my {device}", "The Brightline app closes as soon as I open it.",
              "app keeps crashing", "Your app crashes on my {device}, what can I do?",
              "The Brightline app freezes and then shuts down every time I try to use it.",
              "Why does the app keep quitting on me?",
              "Since this morning the Brightline app won't stay open on my {device}.",
              "Could you help? The app crashes whenever I try to set up my {gadget}.",
              "Brightline app crash on {device}", "The app quits by itself after a few seconds.",
              "Every time I launch the Brightline app it crashes.", "app crashes every time I open it"),
             ("Please update the Brightline app to the latest version and restart your {device}. If it still "
              "crashes, reinstall the app; your settings are saved in your account.",),
             source=("shop/troubleshooting.md#the-brightline-app-crashes",),
             grounded=("Please update the Brightline app to the latest version and restart your phone. If it "
                       "still crashes, reinstall the app; your settings are saved in your account.",)),
        Case(("My {gadget} battery drains really fast", "The battery on my {gadget} doesn't last long.",
              "battery life on the {gadget} is terrible", "How can I make the {gadget}'s battery last longer?",
              "My {gadget} needs charging all the time.",
              "I was wondering why my {gadget} runs out of battery so quickly.",
              "The {gadget} goes flat after half a day.", "Could you help? My {gadget} loses charge really fast.",
              "battery draining fast on the {gadget}",
              "I take the {gadget} on long trips and the battery barely lasts. Any tips?",
              "Is there a way to improve battery life on the {gadget}?", "battery on the {gadget} dies in a few hours"),
             ("Battery life improves after the latest firmware update. Open the Brightline app, go to Device, then "
              "Update. Lower brightness and volume also help.",),
             source=("shop/troubleshooting.md#battery-drains-quickly",),
             grounded=("Battery life improves after the latest firmware update: open the Brightline app, go to "
                       "Device, then Update. Lower brightness and volume also help.",)),
        Case(("How do I update the firmware on my {gadget}?", "{gadget} stopped working after the update"),
             ("Open the Brightline app, select your {gadget} and tap Check for updates. Keep it charged above "
              "{firmware_battery} during the update, then restart it.",),
             source=("shop/troubleshooting.md#updating-firmware",),
             grounded_openers=("How do I update the firmware on my {gadget}?", "is there an update for my {gadget}",
                               "How do I update my {gadget}?", "firmware update for the {gadget}?",
                               "Where do I check for software updates for the {gadget}?",
                               "I was wondering how to get the latest firmware on my {gadget}.",
                               "Can you walk me through updating the {gadget}?",
                               "Is there anything I should know before updating the firmware on the {gadget}?",
                               "Could you tell me how to install updates on the {gadget}?",
                               "My friend says there's new firmware for the {gadget}. How do I get it?",
                               "how to update the {gadget} software",
                               "What's the right way to update the firmware on my {gadget}?",
                               "how to install new firmware on the {gadget}"),
             grounded=("Open the Brightline app, select your {gadget} and tap Check for updates. Keep it charged "
                       "above {firmware_battery} during the update, then restart it.",)),
    ), follow_ups=(
        ("I tried that already",
         "Thanks for trying. The next step is a factory reset: hold the power and volume buttons together for "
         "{reset_seconds}. If that does not help, I will arrange a free replacement."),
        ("is it still under warranty?",
         "All our products have a {warranty} warranty from the delivery date, so yes, it is covered."),
    )),
    Intent("cancellation", cases=(
        Case(("Please cancel my order {order}", "Can I still cancel order {order}? I ordered it by mistake",
              "cancel {order} pls, found it cheaper elsewhere"),
             ("Done. Order {order} is cancelled and you will get a full refund to your {payment} within "
              "{cancel_refund_days} business days.",
              "Order {order} has already shipped, so I can't cancel it. When it arrives you can return it for free "
              "within {cancel_return_window}."),
             follow_ups=(("will I get charged anything?", "No, there is no cancellation fee."),),
             vague=("I want to cancel my order", "pls cancel my order")),
        Case(("I want to cancel my {plan} subscription", "How do I cancel my {plan} membership?",
              "I'd like to end my {plan} subscription.", "cancel {plan}",
              "If I cancel {plan} now, do I lose the benefits straight away?",
              "I don't use {plan} enough anymore. How can I unsubscribe?", "Where do I turn off my {plan} renewal?",
              "I want to stop paying for {plan}.", "Could you tell me how to cancel {plan}?",
              "Please help me get out of {plan}.", "unsubscribe from {plan}", "how do I stop {plan}"),
             ("You can cancel {plan} under Account, Subscriptions. You keep the benefits until the end of the "
              "current billing period.",),
             source=("shop/cancellations.md#cancelling-a-membership",),
             grounded=("You can cancel {plan} under Account, Subscriptions. You keep the membership benefits "
                       "until the end of the current billing period.",)),
    )),
    Intent("product_question", cases=(
        Case(("Is the {product} waterproof?", "can the {product} get wet"),
             ("The {product} is splash resistant but not waterproof, so please keep it away from water.",),
             source=("shop/products.md#water-resistance",),
             grounded_openers=("Is the {gadget} waterproof?", "can the {gadget} get wet",
                               "Is the {gadget} water resistant?", "the {gadget}, waterproof?",
                               "Can I use the {gadget} in the shower?", "Will the {gadget} survive a bit of water?",
                               "I go swimming a lot. Can I take the {gadget} in the pool?",
                               "What happens if the {gadget} gets splashed?",
                               "I was wondering if the {gadget} can handle water.",
                               "Could you tell me whether the {gadget} is waterproof?",
                               "Is it safe to use the {gadget} near water?", "how water resistant is the {gadget}",
                               "can I take my {gadget} out in the rain?"),
             grounded=("The {gadget} is splash resistant but not waterproof, so please keep it away from water.",)),
        Case(("Does the {product} come with a warranty?", "How long is the warranty on the {product}?",
              "Is the {product} covered by a guarantee?", "warranty on the {product}?",
              "Does {plan} give a longer warranty on the {product}?",
              "I'm buying the {product} as a gift for my mum. How long would the warranty last?",
              "What sort of warranty comes with the {product}?",
              "Could you tell me how long the warranty on the {product} lasts?",
              "When does the warranty on the {product} start?", "Is there any guarantee with the {product}?",
              "Do I get a warranty with the {product}, and is it longer for members?",
              "whats the warranty on the {product}"),
             ("Yes, the {product} has a {warranty} warranty, and {plan} members get {member_warranty}.",),
             source=("shop/warranty.md#warranty-length",),
             grounded=("Yes, the {product} has a {warranty} warranty from the delivery date, and Brightline Plus "
                       "and Premium members get {member_warranty}.",)),
        Case(("Is the {product} in stock?", "Do you have the {product} in stock?", "is the {product} available?",
              "The {product} says sold out. What can I do?", "Can I still buy the {product}, or is it out of stock?",
              "If I order the {product} now, how quickly will it ship?",
              "I was wondering whether the {product} is available right now.",
              "Could you let me know when the {product} is back in stock?", "Is the {product} sold out?",
              "I've been waiting weeks for the {product} to be available again.",
              "Any chance of the {product} being restocked soon?", "when will the {product} be back in stock"),
             ("The {product} is in stock and ships within {stock_ships}. Add it to your cart to reserve it.",
              "The {product} is sold out right now and back in about {days} weeks. Tap Notify me on its page to "
              "get an email when it returns."),
             source=("shop/products.md#stock-and-availability",),
             grounded=("When the {product} is in stock it ships within {stock_ships}. If it is sold out, tap "
                       "Notify me on its page to get an email when it is back in stock.",)),
        Case(("Is {plan} worth it?", "should I get {plan}?"),
             ("{plan} costs {plan_month} a month or {plan_year} a year and gives free express shipping, "
              "{member_return_window} returns and {member_warranty} of warranty.",),
             source=("shop/membership.md#price", "shop/membership.md#benefits"),
             grounded_openers=("Is {plan} worth it?", "should I get {plan}?", "what are the pros and cons of {plan}",
                               "Is a {plan} membership good value?",
                               "What are the benefits of {plan}, and is it worth the money?",
                               "{plan}, worth it or not?",
                               "I order from you a few times a year. Would {plan} pay off for me?",
                               "Should I sign up for {plan} or just keep paying for shipping?",
                               "I was wondering whether {plan} is a good deal.",
                               "Can you give me the upsides and downsides of {plan}?",
                               "My friend swears by {plan}. Is it really worth paying for?",
                               "thinking about {plan}, what would I gain and what would it cost me?"),
             style="pros_cons",
             grounded=("Pros of {plan}:\n- Free express shipping on every order.\n- Returns within "
                       "{member_return_window} of delivery instead of {return_window}.\n- A warranty of "
                       "{member_warranty} instead of the standard {warranty} warranty.\nCons:\n- It costs {plan_month} a month or "
                       "{plan_year} a year.\n- The unused part of a billing period is not refunded.\nIf you order "
                       "often, compare the membership price with what you pay for shipping today; you can cancel "
                       "anytime under Account, Subscriptions.",)),
        Case(("Is express shipping worth it for the {product}?", "should I pay for express shipping?"),
             ("Express shipping takes {express_days} business days and costs {express_cost}; standard takes "
              "{standard_days} business days and is free over {free_over}.",),
             source=("shop/shipping.md#delivery-times", "shop/shipping.md#shipping-costs"),
             grounded_openers=("Is express shipping worth it for the {product}?", "should I pay for express shipping?",
                               "express or standard shipping, pros and cons?",
                               "Is it worth paying extra for express delivery?",
                               "express vs standard, which should I pick?",
                               "I need the {product} for a trip next week. Should I pay for express?",
                               "Is faster shipping worth the money?",
                               "I was wondering whether to choose express or standard delivery at checkout.",
                               "Could you help me decide between standard and express shipping?",
                               "Does express shipping make sense, or is standard good enough?",
                               "What do I gain by choosing express delivery, and what does it cost?",
                               "would you recommend express delivery or is standard fine?"),
             style="pros_cons",
             grounded=("Pros of express shipping:\n- It takes {express_days} business days when you order before "
                       "{express_cutoff}.\n- Brightline Plus and Premium members get it free.\nCons:\n- It costs "
                       "{express_cost} on any order.\n- Standard shipping takes {standard_days} business days and is "
                       "free on orders over {free_over}.\nIf you need it within two days, choose express at "
                       "checkout; otherwise standard is the cheaper choice.",)),
        Case(("Is the {gadget} compatible with my {device}?", "will the {gadget} work with a {device}"),
             ("Yes, the {gadget} works with any {device} that has Bluetooth 5.0 or later.",)),
        Case(("Does the {product} come in other colours?", "Which colours is the {product} available in?",
              "colours for the {product}?", "Can I get the {product} in blue?",
              "Is there a white version of the {product}?", "Does the {product} come in anything other than black?",
              "Could you tell me the colour options for the {product}?",
              "I want the {product} to match my desk. What colours are there?",
              "How do I choose the colour of the {product}?", "Is the {product} available in different colours?",
              "what colour options are there for the {product}", "what colors does the {product} come in"),
             ("The {product} comes in black, white and blue. Choose the colour on the product page before adding "
              "it to your cart.",),
             source=("shop/products.md#colours",),
             grounded=("The {product} comes in black, white and blue. Choose the colour on the product page "
                       "before adding it to your cart.",)),
    ), follow_ups=(
        ("ok I'll order it", "Great choice! Let me know if you have any questions about your order."),
    )),
)

CITIES = ("London", "Berlin", "Toronto", "Sydney", "Austin", "Chicago", "Dublin", "Madrid", "Boston", "Denver")
COUNTRIES = ("Canada", "Germany", "France", "Australia", "Japan", "Mexico", "Ireland", "Spain", "Italy", "Brazil")

# ---------------------------------------------------------------- the real-model set: answers from context

# Questions naming an order, by what they ask (the last phrasing of each is held out for testing); answers come
# from the order's record: {order} {items} {ordered} {shipped} {carrier} {tracking} {expected} {delivered}
# {total} {payment} {method}, the `Order` fields with dates as the context layer writes them.
ORDER_QUESTIONS: dict[str, tuple[str, ...]] = {
    "status": ("Where is my order {order}?", "Hi, can you tell me the status of order {order}?",
               "Has my order {order} shipped yet?", "Can you check order {order} for me please",
               "what's going on with {order}", "any news on order {order}?", "When will order {order} arrive?",
               "status of {order}?", "Could you tell me where my package {order} is right now?",
               "I was wondering whether order {order} has been sent out yet.", "Is {order} on its way?",
               "tracking info for {order} please",
               "I'm waiting on order {order} for my son's birthday. Has it been sent yet?",
               "Can you give me an update on {order}?",
               "I ordered the {product} last week and still have no update. Order {order}."),
    "paid": ("How much did I pay for order {order}?", "what was the total of {order}", "how much was order {order}",
             "total for {order}?", "Could you tell me the amount I was charged for {order}?",
             "I need to know how much order {order} cost for my budget spreadsheet.",
             "What did I end up paying for {order}, shipping included?", "How much money was taken for order {order}?",
             "I'd like to know the final price of order {order}.",
             "Which card did I pay for {order} with, and how much was it?",
             "I can't find the confirmation email. How much was {order}?", "what did {order} cost me in the end?"),
    "items": ("What was in order {order}?", "which items are in {order}", "remind me what I ordered in {order}",
              "what's in {order}?", "Could you tell me which products are in order {order}?",
              "I forgot what I bought in {order}, can you remind me?", "Does order {order} include the {product}?",
              "Tell me what's in order {order} please.",
              "My partner placed order {order} on our account. What did they buy?", "items in {order}",
              "What products did I order under {order}?", "can you list what's in my order {order}"),
    "breakdown": ("Can you break down the charge for order {order}?", "why was I charged that much for {order}?",
                  "explain the charge for order {order} step by step", "How is the total for {order} made up?",
                  "Can you show me what the charge for {order} includes?", "breakdown of {order} please",
                  "I don't understand the amount charged for {order}. Can you itemise it?",
                  "How much of order {order} was shipping, and how much the items?",
                  "I was wondering how you got to the total for {order}.",
                  "My statement shows a payment for {order} and I'd like to see what it covers, item by item.",
                  "Could you split the charge for {order} into items and shipping?",
                  "what exactly am I paying for in {order}?"),
    "cancel": ("Please cancel my order {order}", "Can I still cancel order {order}? I ordered it by mistake",
               "cancel {order} pls, found it cheaper elsewhere", "Cancel order {order} please.",
               "Is it too late to cancel {order}?", "I changed my mind about order {order}, can you cancel it?",
               "I don't need {order} anymore, please cancel it.",
               "I was wondering whether order {order} can still be cancelled.",
               "Could you stop order {order} before it ships?", "I accidentally ordered twice. Please cancel {order}.",
               "how do I cancel {order}", "I'd like to cancel {order}"),
}
VAGUE_ORDER_QUESTIONS: dict[str, tuple[str, ...]] = {
    "status": ("Where is my order?", "hi, when will my stuff arrive", "where's my package?",
               "has my order shipped yet", "any update on my delivery?", "I'm still waiting for my parcel",
               "can you check my order status"),
    "cancel": ("I want to cancel my order", "can I still cancel my order?",
               "I ordered something by mistake and want to cancel it", "cancel order please", "pls cancel my order"),
}
ORDER_REPLIES: dict[str, dict[str, str]] = {
    "status": {
        "processing": "Order {order} ({items}) is processing: it was placed on {ordered} and has not shipped yet. "
                      "You will get a tracking email as soon as it ships.",
        "shipped": "Order {order} shipped on {shipped} with {carrier} and is expected on {expected}. The tracking "
                   "number is {tracking}.",
        "delivered": "{carrier} delivered order {order} on {delivered}. If you cannot find the parcel, check with "
                     "your neighbours and your building's mailroom first.",
        "cancelled": "Order {order}, placed on {ordered}, is cancelled, so it will not ship.",
        "returned": "Order {order} was returned: it was delivered on {delivered} and the items came back to us.",
    },
    "paid": {"any": "Order {order} came to {total} in total ({method} shipping included), paid with your {payment}."},
    "items": {"any": "Order {order} contains {items}."},
    "breakdown": {"any": "Here is the charge for order {order}, step by step:\n1. Items: {items}, {subtotal} in "
                         "total.\n2. Shipping: {method} shipping, {shipping_cost}.\n3. Total charged: {total}, "
                         "paid with your {payment}.\nIf your statement shows a different amount, send me the amount "
                         "and its date and I will check it."},
    "cancel": {
        "processing": "Order {order} has not shipped yet, so it can still be cancelled. Once it is cancelled you get "
                      "a full refund to your original payment method within {cancel_refund_days} business days.",
        "shipped": "Order {order} has already shipped with {carrier}, so it can no longer be cancelled. When it "
                   "arrives you can return it for free within {cancel_return_window} of delivery.",
        "delivered": "Order {order} was delivered on {delivered}, so it can no longer be cancelled. You can return "
                     "it for free within {cancel_return_window} of delivery.",
        "cancelled": "Order {order} is already cancelled, so there is nothing more to do.",
    },
}
# What the cancel answers rest on besides the record.
ORDER_SOURCES = {("cancel", "processing"): ("shop/cancellations.md#before-the-order-ships",),
                 ("cancel", "shipped"): ("shop/cancellations.md#after-the-order-has-shipped",),
                 ("cancel", "delivered"): ("shop/cancellations.md#after-the-order-has-shipped",)}
UNKNOWN_ORDER_REPLIES = (
    "I can't find an order with the number {order}. Please check the number in your order confirmation email and "
    "send it to me again.",
    "There is no order with the number {order} in our records. Could you check your confirmation email for the "
    "right number?",
    "I could not find order {order}. Please double-check the number in your confirmation email and send it again.",
)
MALFORMED_ORDER_REPLY = ("{typed} is not a complete order number: order numbers are BL followed by five digits, for "
                         "example BL-12345. Please send the full number from your confirmation email.")
MALFORMED_ORDER_QUESTIONS = ("Where is my order {typed}?", "can you check order {typed}", "status of {typed} please")

# How a customer states their expertise to technical support (the last of each is held out), and how the
# answer's layout follows it: plain numbered steps for a beginner, the short version for an expert.
EXPERTISE: dict[str, tuple[str, ...]] = {
    "novice": ("I'm not good with technology. ", "I'm a complete beginner with gadgets, sorry. ",
               "Please explain simply, I'm not techy. ", "I don't really understand tech stuff, so go slowly: "),
    "expert": ("I'm a software engineer, short version please. ", "I know my way around tech, just the fix: ",
               "Skip the basics, I work in IT. ", "I'm pretty technical, so keep it brief: "),
}
EXPERTISE_LEADS = {"novice": ("No problem, let's go one step at a time:", "Sure, here is what to do, step by step:"),
                   "expert": ("Short version:", "In brief:")}
EXPERTISE_ENDS = {"novice": ("If one of the steps is unclear, tell me its number and I'll explain it.",
                             "Tell me which step you got stuck on, if any."),
                  "expert": ("",)}

# Questions no help-center article answers (the hand-written held-out set asks about other topics).
UNCOVERED_QUESTIONS = (
    "Do you offer gift wrapping?", "Can I pick up my order in one of your stores?", "Do you have a shop in {city}?",
    "Can I trade in my old laptop?", "Do you sell refurbished products?", "Are you hiring at the moment?",
    "Can you engrave the {product}?", "Do you have a loyalty points program?",
    "Do you offer bulk discounts for companies?", "What is the screen size of the Nimbus 14 laptop?",
    "any jobs going in your warehouse?", "Is your packaging plastic-free?",
    "Do you take back old electronics for recycling?",
    "I'm writing a school project on green shops. Is Brightline carbon neutral?",
    "What is the refresh rate of the Nova 4K monitor?", "How much weight can the Drift office chair hold?",
    "how many litres is the Terra hiking backpack", "Does the Breeze air purifier have a HEPA filter?",
    "Do you sell replacement ear tips for the AeroBuds Pro earbuds?", "Where are your products made?",
    "Do you host any events or product launches in {city}?",
    "Is there a showroom where I could try the {product} before buying it?",
    "I run a tech blog. Do you have an affiliate program?", "Can I sell my own products on your website?",
    "Does the {gadget} come with a charger in the box?", "Can I book a repair appointment in person?",
    "Do you deliver on Sundays?", "Can I rent the {product} instead of buying it?",
)
# How a customer joins a second question to the first in one message (`datagen.combined_draft`).
JOINERS = ("Also, ", "And ", "One more thing: ", "Oh, and ", "Plus, ", "Second question: ")
UNCOVERED_REPLIES = (
    "I'm sorry, our help center does not cover that, so I would rather not guess. I can hand you over to a human "
    "agent who can answer it.",
    "That is not something our help center covers, and I don't want to give you wrong information. Would you like "
    "me to connect you with a human agent?",
    "I don't have information about that in our help center. A human agent can help: just ask for one here and the "
    "chat is handed over.",
)
# With no context at all (a persona without knowledge), a shop fact is not the assistant's to state.
NO_CONTEXT_REPLIES = (
    "I can't see our help-center articles or order records in this chat, so I can't tell you that reliably. A human "
    "agent can check it for you.",
    "I don't have the shop's policies or your order details here, so I would rather not guess. Please ask for a "
    "human agent, who can look it up.",
)

# Help-center sections no generated answer quotes: the hand-written held-out set
# (data/support/heldout_handwritten.jsonl, rows with "note": "never_quoted") asks about them, so a model
# can only answer those from the context it is given, never from an answer it was trained on.
HELDOUT_SECTIONS = frozenset({
    "shop/troubleshooting.md#factory-reset", "shop/gift-cards.md#buying-a-gift-card",
    "shop/gift-cards.md#using-a-gift-card", "shop/gift-cards.md#balance-and-expiry",
    "shop/warranty.md#what-is-covered", "shop/warranty.md#making-a-claim", "shop/contact.md#opening-times",
    "shop/products.md#price-list", "shop/shipping.md#carriers",
    "shop/returns.md#return-shipping-costs", "shop/returns.md#exchanges", "shop/refunds.md#where-the-money-goes",
    "shop/shipping.md#when-you-are-not-home", "shop/shipping.md#changing-the-delivery-address",
})


@dataclass(frozen=True)
class Drill:
    """A made-up help-center section for reading drills (`datagen.reading_draft`): its values are drawn anew for
    every dialogue, so its answer can only be read from the context."""

    title: str
    """Article title, e.g. "Gift wrapping"."""
    heading: str
    """Section heading within the article, e.g. "Prices and options"."""
    text: str
    """The section: 2 to 4 sentences in the help center's style, with value slots."""
    questions: tuple[str, ...]
    """Customer phrasings (at least 5), each answered by `answer`."""
    answer: str
    """The reply: states every value slot of `text` that the questions ask about, as the section words it."""


# Topics no real help-center article covers (and none of the held-out set's uncovered questions), so a drill's
# section is the only source of its answer and, when it is left out, declining is right.
DRILLS: tuple[Drill, ...] = (
    Drill(
        "Gift wrapping", "Prices and options",
        "Gift wrapping costs {price} per item and can be added at checkout, under Gift options. You can choose from "
        "{count} wrapping paper designs, and a free greeting card with your message is included.",
        ("Do you offer gift wrapping?", "how much to gift wrap something",
         "It's my sister's birthday next week and I'm ordering the {product} for her. Can you wrap it, and what "
         "does that cost?",
         "Is gift wrap an option at checkout? How much extra?",
         "What are the gift wrapping options, and can I add a little card?", "gift wrapping price?"),
        "We do: gift wrapping costs {price} per item, and you add it at checkout under Gift options. There are "
        "{count} wrapping paper designs to choose from, and a free greeting card with your message is included.",
    ),
    Drill(
        "Pickup points", "Collecting your order",
        "Choose Pickup point at checkout to collect your order from a partner shop near you instead of having it "
        "delivered. Pickup is free on every order. Your order is ready {hours} hours after it ships, and the pickup "
        "point keeps it for {days} days; bring the pickup code from your email.",
        ("Can I collect my order from a shop instead of getting it delivered?", "Do you have click and collect?",
         "How long does a pickup point keep my order?",
         "pickup point - is it free? when is my stuff ready to collect",
         "I'd rather pick up my orders myself than have them brought to my flat. Is that possible?",
         "I'd like to order the {product} and collect it at a partner shop near me. How does that work?"),
        "You can: choose Pickup point at checkout to collect your order free of charge from a partner shop near "
        "you. It is ready {hours} hours after it ships, and the pickup point keeps it for {days} days; just bring "
        "the pickup code from your email.",
    ),
    Drill(
        "Trade-in", "Trade-in credit",
        "You can trade in an old phone, tablet or laptop of any brand under Account, Trade-in, and we email you a "
        "free shipping label. A working phone earns up to {price} in store credit and a working laptop up to "
        "{price2}. The credit is added to your account {days} to {days2} business days after the device arrives.",
        ("Can I trade in my old laptop?", "how much credit do I get for an old phone",
         "I'm thinking about buying the {product}. Would you take my old phone in part exchange, and what is it "
         "worth?",
         "Do you have a trade-in program? How long until the credit shows up?",
         "What's the trade-in value for a working laptop, roughly?",
         "Does trade-in only work for Brightline devices? My tablet is another brand."),
        "Sure: start a trade-in for a phone, tablet or laptop of any brand under Account, Trade-in, and we email "
        "you a free shipping label. A working phone earns up to {price} in store credit and a working laptop up to "
        "{price2}, added to your account {days} to {days2} business days after the device arrives.",
    ),
    Drill(
        "Recycling old electronics", "Free recycling",
        "We recycle old electronics of any brand for free, even if they no longer work. Print a free recycling "
        "label under Account, Recycling and send up to {count} devices in one parcel. When the parcel arrives, we "
        "email you a {percent} discount code for your next order.",
        ("Do you take back old electronics for recycling?",
         "I've got a drawer full of dead chargers and an old tablet. Can I send them to you to be recycled?",
         "how many devices can i put in one recycling parcel",
         "Is there anything in it for me if I recycle my old gadgets with you?",
         "My old speaker is from another brand and it's broken. Would you still recycle it?",
         "recycling an old phone - do I have to pay the postage?"),
        "Yes, we recycle old electronics of any brand for free, even ones that no longer work: print a free label "
        "under Account, Recycling and send up to {count} devices in one parcel. When it arrives, we email you a "
        "{percent} discount code for your next order.",
    ),
    Drill(
        "Business orders", "Bulk discounts",
        "Companies that order {count} or more units of the same product get {percent} off those units. Request a "
        "quote on the Business page; our business team replies within {hours} hours with a quote that is valid for "
        "{days} days.",
        ("Do you offer bulk discounts for companies?",
         "We need new equipment for our office. Is there a discount if we buy a lot of the same thing?",
         "How many units do we need to order to get the business discount?",
         "Hi, I handle purchasing for a small firm. How do I get a quote for twenty units of the {product}, and "
         "how quickly would I hear back?",
         "business pricing?", "How long is a business quote valid?"),
        "Companies get {percent} off when they order {count} or more units of the same product. Request a quote on "
        "the Business page: our business team replies within {hours} hours, and the quote is valid for {days} days.",
    ),
    Drill(
        "Brightline Points", "Earning and using points",
        "Every order earns one Brightline Point for each dollar you spend. Each 100 points are worth {price} off a "
        "later order; redeem them on the payment page at checkout. Points expire {count} months after you earn them.",
        ("Do you have a loyalty points program?", "how much are my points worth", "Do Brightline Points ever expire?",
         "I just bought the {product}. Do I collect points on that, and how do I use them?",
         "How many points do I need for a discount, and what is it worth?", "Where do I spend my points?"),
        "You earn one Brightline Point for each dollar you spend, and every 100 points are worth {price} off a later "
        "order; redeem them on the payment page at checkout. Points expire {count} months after you earn them.",
    ),
    Drill(
        "Engraving", "Personalising a product",
        "Any product we sell can be engraved with a name or a short message of up to {count} words. Engraving costs "
        "{price} per item; choose it on the product page before you add the item to your cart. Engraved orders ship "
        "{days} business days later than usual.",
        ("Can you engrave the {product}?",
         "I want to put my dad's name on a present. Do you do personalisation?", "how many words can you engrave",
         "Does engraving slow down delivery?", "What's the price for engraving?",
         "personalised engraving - cost and how long?"),
        "Any product we sell can be engraved with a name or a short message of up to {count} words, for {price} per "
        "item; choose it on the product page before you add the item to your cart. Engraved orders ship {days} "
        "business days later than usual.",
    ),
    Drill(
        "Renting a product", "Prices and terms",
        "You can rent laptops, monitors and speakers instead of buying them. Renting costs {price} a month for a "
        "minimum of {count} months, plus a deposit of {price2} that we pay back when the item comes back in good "
        "condition.",
        ("Can I rent a laptop instead of buying it?",
         "I only need a monitor for a short project. Do you rent them out?", "how much does renting cost per month",
         "Is there a deposit for rentals?", "What's the minimum rental period for a speaker?",
         "rent vs buy, what are your rental terms?"),
        "Renting is possible for laptops, monitors and speakers: it costs {price} a month for a minimum of {count} "
        "months, plus a deposit of {price2} that we pay back when the item comes back in good condition.",
    ),
    Drill(
        "Pre-orders", "How pre-orders work",
        "New products can be pre-ordered from {days} days before their release date. We take a deposit of {price} "
        "when you pre-order and charge the rest when the item ships on release day. You can pre-order up to {count} "
        "units of each product.",
        ("Can I pre-order new products?", "How early can I pre-order something before it's released?",
         "do you charge the full amount straight away on a pre-order?",
         "I want the next model the day it comes out. How does pre-ordering work with you?",
         "Is there a limit on how many I can pre-order? I want a few for my team.", "pre-order deposit how much"),
        "New products can be pre-ordered from {days} days before their release date. We take a {price} deposit "
        "when you pre-order and charge the rest when the item ships on release day, and you can pre-order up to "
        "{count} units of each product.",
    ),
    Drill(
        "Parcel lockers", "Delivery to a locker",
        "Choose Parcel locker at checkout to have your order delivered to a locker near you, open around the clock. "
        "Parcels up to {count} kg fit in a locker. When your parcel arrives, we text you an opening code, and the "
        "parcel stays in the locker for {hours} hours.",
        ("Can you deliver to a parcel locker?", "how long does my parcel stay in the locker",
         "Could my order go to one of those 24/7 lockers? I'd like to grab it on my way home from the gym.",
         "Is there a weight limit for locker delivery?", "How do I open the locker when my order arrives?",
         "locker delivery - how does it work?"),
        "Of course: choose Parcel locker at checkout to have your order delivered to a locker near you, open around "
        "the clock, for parcels up to {count} kg. When it arrives, we text you an opening code, and the parcel stays "
        "in the locker for {hours} hours.",
    ),
    Drill(
        "Installation service", "Booking an installer",
        "For {price}, a technician installs and sets up your product at home and shows you how it works. Add "
        "Installation on the product page; the technician visits within {days} business days of delivery, between "
        "8 am and {time}.",
        ("Can someone come and set up my new monitor at home?", "Do you offer an installation service?",
         "how much is home installation", "If I book installation, how soon would the technician come?",
         "My mum isn't great with tech. Can you send someone to install her air purifier and show her how it works?",
         "What time of day do your installers visit, and what does it cost?"),
        "A technician can install and set up your product at home and show you how it works, for {price}. Add "
        "Installation on the product page, and the technician visits within {days} business days of delivery, "
        "between 8 am and {time}.",
    ),
    Drill(
        "Wish lists", "Saving and sharing a wish list",
        "Tap the heart on a product page to save the item to a wish list. You can keep up to {count} wish lists and "
        "share each one with a link. If an item on your wish list drops in price by {percent} or more, we email you.",
        ("Is there a wish list on your site?", "how do I add something to a wish list",
         "Can I share my wish list with my family before my birthday?", "How many wish lists can I make?",
         "Will you tell me if something on my wish list goes on sale?", "wishlist price drop alerts?"),
        "Tap the heart on a product page to save an item to a wish list; you can keep up to {count} wish lists and "
        "share each one with a link. If an item on your wish list drops in price by {percent} or more, we email you.",
    ),
    Drill(
        "Accessibility", "Sign language video calls",
        "Customers who are deaf or hard of hearing can book a free video call with a support agent and a sign "
        "language interpreter under Help, Accessibility. Book at least {hours} hours ahead; calls are available "
        "every weekday until {time}.",
        ("I'm deaf. Is there a way to get support in sign language?",
         "Do you offer sign language interpreters for support calls?",
         "how far in advance do I need to book a sign language call",
         "My father is hard of hearing and phone calls are hard for him. Is there an option that works better?",
         "What times are the sign language video calls available?", "Is the interpreter service free?"),
        "Absolutely: you can book a free video call with a support agent and a sign language interpreter under Help, "
        "Accessibility. Please book at least {hours} hours ahead; calls are available every weekday until {time}.",
    ),
    Drill(
        "Events and workshops", "Online workshops",
        "We run free online workshops on getting started with your devices every {weekday} at {time}. Each session "
        "has room for {count} people, so sign up on the Events page. Workshops are held online, so you can join from "
        "anywhere.",
        ("Do you run any workshops in {city}?", "Are there classes to learn how to use my new gadgets?",
         "When are your workshops held?", "How do I sign up for a workshop, and is it free?",
         "my grandad just got his first smartwatch. anything like a beginners' session he could join?",
         "how many people are in a workshop?"),
        "We run free online workshops on getting started with your devices every {weekday} at {time}, and you can "
        "join from anywhere. Each session has room for {count} people, so sign up on the Events page.",
    ),
    Drill(
        "Bundles", "Bundle deals",
        "Bundles combine a device with matching accessories and cost {percent} less than buying the items "
        "separately. You find all current bundles on the Bundles page; each bundle offer runs for {days} days. A "
        "bundle ships as one parcel.",
        ("Do you have any bundle deals?", "Is it cheaper to buy a laptop together with its accessories?",
         "how much do I save with a bundle", "Where can I see your bundles?", "How long do bundle offers last?",
         "bundle discount?"),
        "Our bundles combine a device with matching accessories and cost {percent} less than buying the items "
        "separately. You find all current bundles on the Bundles page, and each bundle offer runs for {days} days.",
    ),
    Drill(
        "Refurbished products", "Buying refurbished",
        "Refurbished products are returned items that our technicians have checked, cleaned and repackaged. They "
        "cost up to {percent} less than new. New refurbished items are added to the Refurbished page every "
        "{weekday} at {time}.",
        ("Do you sell refurbished products?", "What does refurbished mean for your products, and is it cheaper?",
         "How much cheaper is refurbished?", "When do you add new refurbished items?",
         "refurb page - when does new stuff go up?", "Are refurbished items checked before you sell them?"),
        "We do: our refurbished products are returned items that our technicians have checked, cleaned and "
        "repackaged, and they cost up to {percent} less than new. New refurbished items are added to the "
        "Refurbished page every {weekday} at {time}.",
    ),
    Drill(
        "Sending a gift", "Gift receipts and messages",
        "Tick This is a gift at checkout, and the packing slip shows no prices and includes a gift receipt. You can "
        "add a printed message of up to {count} lines, and choose a shipping date up to {days} days ahead so the "
        "gift arrives at the right time.",
        ("Can you leave the price off the packing slip? It's a present.", "Do you include gift receipts?",
         "I'm sending the {product} to my nephew. Can I add a message to it?", "How long can a gift message be?",
         "Can I order now but have the gift shipped later, closer to the birthday?", "gift order options?"),
        "Tick This is a gift at checkout: the packing slip then shows no prices and includes a gift receipt. You "
        "can add a printed message of up to {count} lines and choose a shipping date up to {days} days ahead.",
    ),
    Drill(
        "Packaging", "Packaging and recycling",
        "Our packaging is plastic-free: boxes are made from {percent} recycled cardboard and the padding is paper, "
        "so everything can go in paper recycling. Send back {count} of our reusable shipping bags in one envelope "
        "and we add {price} store credit to your account.",
        ("Is your packaging plastic-free?", "Can I put your boxes in the paper recycling?",
         "What can I do with the reusable shipping bags you send?", "how much recycled material is in your boxes",
         "I'm trying to cut down on waste at home. How eco-friendly is your packaging?",
         "do I get anything for sending back the mailer bags"),
        "Our packaging is plastic-free: the boxes are made from {percent} recycled cardboard and the padding is "
        "paper, so everything can go in paper recycling. If you send back {count} of our reusable shipping bags in "
        "one envelope, we add {price} store credit to your account.",
    ),
    Drill(
        "Spare parts", "Buying replacement parts",
        "Replacement parts such as ear tips, charging cables and chargers are sold on the Spare parts page. A "
        "charging cable costs {price} and a charger {price2}. Parts ship within {days} to {days2} business days, and "
        "we keep parts for every product for {count} years after it is discontinued.",
        ("Do you sell replacement ear tips for the AeroBuds Pro earbuds?",
         "I lost the charger for my speaker. Can I buy a new one from you?", "how much is a spare charging cable",
         "How long does it take for spare parts to arrive?",
         "My earbuds are getting old. Will you still have parts for them in a few years?",
         "where do I buy spare parts"),
        "You find replacement ear tips, charging cables and chargers on the Spare parts page: a charging cable costs "
        "{price} and a charger {price2}. Parts ship within {days} to {days2} business days, and we keep parts for "
        "every product for {count} years after it is discontinued.",
    ),
    Drill(
        "Gift registry", "Wedding, baby and housewarming registries",
        "Create a gift registry for a wedding, a new baby or a housewarming under Account, Registry, and share it "
        "with your guests by link. Guests can buy from it until {days} days after the event. Afterwards, you get "
        "{percent} off anything still left on the registry for {days2} days.",
        ("Do you do wedding registries?",
         "We're expecting our first baby and friends keep asking what to get. Can I set up a gift list with you?",
         "How long after the wedding can guests still buy from the registry?",
         "Is there a discount on items nobody bought from my registry?", "how do I share my registry with guests",
         "housewarming registry?"),
        "Yes: create a gift registry for a wedding, a new baby or a housewarming under Account, Registry, and share "
        "it with your guests by link; they can buy from it until {days} days after the event. Afterwards, you get "
        "{percent} off anything still left on the registry for {days2} days.",
    ),
    Drill(
        "Refill subscriptions", "Subscribe and save",
        "Filters, ear tips and other consumables can be delivered automatically with a refill subscription, on a "
        "schedule you choose from every month to every {count} months. Refills cost {percent} less than single "
        "orders, and you can pause or change them under Account, Refills.",
        ("Can I get air purifier filters sent automatically?",
         "Is there a subscription for replacement filters? Is it cheaper?", "how often can refills be delivered",
         "How do I pause my filter refills while I'm travelling?", "Do refill subscriptions save me anything?",
         "I keep forgetting to reorder filters for the Breeze air purifier. Any way to automate it?"),
        "With a refill subscription, filters, ear tips and other consumables are delivered automatically on a "
        "schedule you choose, from every month to every {count} months, and cost {percent} less than single orders. "
        "You can pause or change your refills under Account, Refills.",
    ),
    Drill(
        "Brightline Community", "Asking the community",
        "The Brightline Community forum is where customers help each other with questions about their devices. Our "
        "product experts answer any unanswered question within {hours} hours. Members who give {count} accepted "
        "answers get a Helper badge.",
        ("Is there a forum where I can ask other customers about stuff?", "Do you have a user community?",
         "If I post a question in the community and no one replies, will anyone from Brightline answer?",
         "how do I get the Helper badge on the forum", "How quickly do your experts answer on the forum?",
         "community forum?"),
        "There is: the Brightline Community forum, where customers help each other, and our product experts answer "
        "any unanswered question within {hours} hours. Members who give {count} accepted answers get a Helper badge.",
    ),
    Drill(
        "Tester Club", "Testing new products",
        "Members of the Tester Club try new products before they go on sale and keep them for free. Testers receive "
        "up to {count} products a year and send their feedback within {days} days of delivery. Apply on the Tester "
        "Club page; new places open every {weekday}.",
        ("Can I become a product tester?", "Do I get to keep the products I test?",
         "how many things does a tester get per year",
         "I write reviews all the time anyway. Is there a way to test your products before launch?",
         "How long do testers have to send their feedback?", "When do new tester places open?"),
        "In the Tester Club you try new products before they go on sale and keep them for free. Testers receive up "
        "to {count} products a year and send their feedback within {days} days of delivery; apply on the Tester Club "
        "page, where new places open every {weekday}.",
    ),
    Drill(
        "Birthday treat", "Your birthday voucher",
        "Add your birthday under Account, Profile, and every year we email you a {price} voucher in your birthday "
        "month. The voucher is valid for {days} days and works on any order.",
        ("Do I get anything on my birthday?", "where do I put my birthday on my account",
         "How much is the birthday voucher worth?", "my birthday voucher - how long before it runs out?",
         "Does the birthday voucher have a minimum order amount?",
         "It's my birthday next month! Do you do any birthday discounts?"),
        "We do! Add your birthday under Account, Profile, and every year we email you a {price} voucher in your "
        "birthday month. It is valid for {days} days and works on any order.",
    ),
)
