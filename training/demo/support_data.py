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
              "How long will it take to get my {product} to {city}?"),
             ("Standard shipping to {city} takes {standard_days} business days and express takes {express_days}. "
              "Orders over {free_over} ship free. You can choose the option at checkout.",),
             source=("shop/shipping.md#delivery-times",),
             grounded=("Standard shipping to {city} takes {standard_days} business days and express takes "
                       "{express_days} business days. You choose the option at checkout.",)),
        Case(("Do you ship to {country}?", "can I order from {country}", "Do you deliver internationally?"),
             ("Yes, we ship to {country}. International delivery usually takes {international_days} business days, "
              "and any import fees are shown at checkout.",),
             source=("shop/shipping.md#international-shipping",),
             grounded=("Yes, we ship to many countries. International delivery usually takes {international_days}"
                       " business days, and any import fees are shown at checkout before you pay.",)),
        Case(("How much is express shipping?", "Is shipping free?", "what does delivery cost"),
             ("Standard shipping is free on orders over {free_over}, otherwise it costs {standard_cost}. Express "
              "costs {express_cost} and "
              "arrives in {express_days} business days if you order before {express_cutoff}.",),
             source=("shop/shipping.md#shipping-costs",),
             grounded=("Standard shipping is free on orders over {free_over}, otherwise it costs {standard_cost}."
                       " Express shipping costs {express_cost} on any order.",)),
        Case(("my package {order} says delivered but it's not here", "Tracking says delivered but I got nothing. "
              "Order {order}"),
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
              "How do I return the {product}?"),
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
        Case(("When will I get my refund for {order}?", "I returned order {order} but no refund yet"),
             ("Your refund for order {order} was issued on {weekday}. It can take {refund_show_days} business days "
              "to show on your {payment}.",),
             vague=("where is my refund",),
             source=("shop/refunds.md#how-long-a-refund-takes-to-show",),
             order_status=("returned",),
             grounded=("Order {order} has been returned, so its refund is issued. Once issued, a refund can take "
                       "{refund_show_days} business days to show on your statement, depending on your bank.",)),
        Case(("Can I return something I bought {days} months ago?", "is it too late to return my {product}?"),
             ("Returns are accepted within {return_window} of delivery. If it has been longer, the {product} may "
              "still be covered by its {warranty} warranty, so I can open a warranty claim for you.",),
             source=("shop/returns.md#return-window",),
             grounded=("Returns are accepted within {return_window} of delivery. After the return window, a "
                       "faulty item may still be covered by its warranty.",)),
    )),
    Intent("payment", cases=(
        Case(("My payment keeps getting declined", "checkout won't accept my {payment}",
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
              "there are 2 charges on my card for {order}"),
             ("I see two charges for order {order}. One of them is a temporary hold that will disappear within "
              "{hold_days} business days. If it is still there after that, reply here and I will refund it.",),
             source=("shop/payments.md#charged-twice",),
             grounded=("One of two charges for an order is usually a temporary hold that disappears within "
                       "{hold_days} business days. If it is still there after that, contact support and we refund"
                       " it.",)),
        Case(("Do you accept {payment}?", "what payment methods do you take"),
             ("We accept Visa, Mastercard, PayPal, Apple Pay and Brightline gift cards. Choose one on the payment "
              "page at checkout.",),
             source=("shop/payments.md#which-cards-and-payment-methods-we-accept",),
             grounded=("We accept Visa, Mastercard, PayPal, Apple Pay and Brightline gift cards; Visa and "
                       "Mastercard debit cards work too. Choose one on the payment page at checkout.",)),
        Case(("can i pay in installments", "Can I split the payment for the {product}?"),
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
        Case(("Why is the {product} cheaper today than when I bought it?", "the {product} went on sale right after "
              "I bought it"),
             ("Prices can change, but we offer price matching for {price_match_days} after purchase. I have refunded "
              "the difference for order {order} to your {payment}.",),
             source=("shop/pricing.md#price-matching",),
             grounded=("Prices can change, but if an item you bought gets cheaper within {price_match_days} after"
                       " purchase, we refund the difference to your original payment method. Contact support with"
                       " the order number.",)),
        Case(("Do you have any discount codes?", "any coupons?", "Is there a student discount?"),
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
             grounded_openers=("How much does {plan} cost?",
                               "what's the price of {plan}",
                               "is {plan} monthly or yearly?",),
             grounded=("{plan} costs {plan_month} a month or {plan_year} a year. You can switch between monthly "
                       "and yearly billing under Account, Subscriptions.",)),
        Case(("I need an invoice for order {order}", "can I get a receipt for {order}"),
             ("You can download the invoice for order {order} from Orders, then Invoice. I can also email it to "
              "you if you prefer.",),
             follow_ups=(("can you email it instead",
                          "Of course. I have sent the invoice to the email on your account; it should arrive in a "
                          "few minutes."),),
             source=("shop/pricing.md#invoices-and-receipts",),
             grounded=("You can download the invoice for order {order} from Orders, then Invoice. Support can "
                       "also email it to the address on your account.",)),
        Case(("the price at checkout is higher than on the product page??", "why is my total more than the price"),
             ("The checkout price includes tax and shipping, which are not shown on the product page. You can see "
              "the breakdown by clicking Order summary.",),
             source=("shop/pricing.md#checkout-total",),
             grounded=("The checkout price includes tax and shipping, which are not shown on the product page. "
                       "Click Order summary at checkout to see the breakdown.",)),
    )),
    Intent("account_login", cases=(
        Case(("I can't log in to my account", "forgot my password, help", "how do I reset my password"),
             ("Let's fix that. Click Forgot password on the sign-in page and we will email you a reset link. The "
              "link works for {reset_link}.",),
             follow_ups=(("the reset link says expired",
                          "Reset links expire after {reset_link}. Please request a new one and open it from the same "
                          "device."),),
             source=("shop/account.md#forgotten-password",),
             grounded=("Click Forgot password on the sign-in page and we email you a reset link. The link works "
                       "for {reset_link}; if it has expired, request a new one and open it on the same device.",)),
        Case(("I'm not getting the verification code", "the login code never arrives"),
             ("Please check your spam folder for the code, and make sure the email address is spelled correctly. "
              "You can request a new code after {code_wait}.",),
             source=("shop/account.md#verification-codes",),
             grounded=("Please check your spam folder for the code, and make sure the email address is spelled "
                       "correctly. You can request a new code after {code_wait}.",)),
        Case(("How do I change the email on my account?", "i want to update my email address"),
             ("Go to Account, then Settings, then Email, and enter your new address. We will send a confirmation "
              "link to both addresses.",),
             source=("shop/account.md#changing-your-email-address",),
             grounded=("Go to Account, then Settings, then Email, and enter your new address. We send a "
                       "confirmation link to both the old and the new address.",)),
        Case(("My account is locked", "it says my account is locked??"),
             ("Accounts lock after {lock_tries} wrong passwords. It unlocks by itself after {unlock_after}, or you "
              "can reset your password now to unlock it right away.",),
             source=("shop/account.md#locked-account",),
             grounded=("An account locks after {lock_tries} wrong passwords. It unlocks by itself after "
                       "{unlock_after}, or you can reset your password to unlock it right away.",)),
        Case(("how do i delete my account", "Please delete my account and my data"),
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
        Case(("My {gadget} won't turn on", "the {gadget} is dead, nothing happens when i press the button"),
             ("Sorry about that. Please charge the {gadget} for at least {charge_minutes}, then hold the power button "
              "for {restart_seconds} to restart it. If it still does not turn on, I can start a warranty "
              "replacement.",),
             source=("shop/troubleshooting.md#device-does-not-turn-on",),
             grounded=("Please charge the {gadget} for at least {charge_minutes}, then hold the power button for "
                       "{restart_seconds} to restart it. If it still does not turn on, support can start a "
                       "warranty replacement.",)),
        Case(("The {gadget} is not connecting to my {device}", "cant pair {gadget} with {device}"),
             ("Let's try this: turn Bluetooth off and on on your {device}, forget the {gadget} in the Bluetooth "
              "list, then pair it again. Keep the two devices close together while pairing.",),
             source=("shop/troubleshooting.md#bluetooth-device-will-not-connect-or-pair",),
             grounded=("Turn Bluetooth off and on again on your {device}, forget the {gadget} in the Bluetooth "
                       "list, then pair it again. Keep the two devices close together while pairing.",)),
        Case(("the Brightline app keeps crashing on my {device}", "app crashes every time I open it"),
             ("Please update the Brightline app to the latest version and restart your {device}. If it still "
              "crashes, reinstall the app; your settings are saved in your account.",),
             source=("shop/troubleshooting.md#the-brightline-app-crashes",),
             grounded=("Please update the Brightline app to the latest version and restart your phone. If it "
                       "still crashes, reinstall the app; your settings are saved in your account.",)),
        Case(("My {gadget} battery drains really fast", "battery on the {gadget} dies in a few hours"),
             ("Battery life improves after the latest firmware update. Open the Brightline app, go to Device, then "
              "Update. Lower brightness and volume also help.",),
             source=("shop/troubleshooting.md#battery-drains-quickly",),
             grounded=("Battery life improves after the latest firmware update: open the Brightline app, go to "
                       "Device, then Update. Lower brightness and volume also help.",)),
        Case(("How do I update the firmware on my {gadget}?", "{gadget} stopped working after the update"),
             ("Open the Brightline app, select your {gadget} and tap Check for updates. Keep it charged above "
              "{firmware_battery} during the update, then restart it.",),
             source=("shop/troubleshooting.md#updating-firmware",),
             grounded_openers=("How do I update the firmware on my {gadget}?",
                               "is there an update for my {gadget}",
                               "how to install new firmware on the {gadget}",),
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
        Case(("I want to cancel my {plan} subscription", "how do I stop {plan}"),
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
             grounded_openers=("Is the {gadget} waterproof?",
                               "can the {gadget} get wet",
                               "can I take my {gadget} out in the rain?",),
             grounded=("The {gadget} is splash resistant but not waterproof, so please keep it away from water.",)),
        Case(("Does the {product} come with a warranty?", "whats the warranty on the {product}"),
             ("Yes, the {product} has a {warranty} warranty, and {plan} members get {member_warranty}.",),
             source=("shop/warranty.md#warranty-length",),
             grounded=("Yes, the {product} has a {warranty} warranty from the delivery date, and Brightline Plus "
                       "and Premium members get {member_warranty}.",)),
        Case(("Is the {product} in stock?", "when will the {product} be back in stock"),
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
                               "would you recommend express delivery or is standard fine?"),
             style="pros_cons",
             grounded=("Pros of express shipping:\n- It takes {express_days} business days when you order before "
                       "{express_cutoff}.\n- Brightline Plus and Premium members get it free.\nCons:\n- It costs "
                       "{express_cost} on any order.\n- Standard shipping takes {standard_days} business days and is "
                       "free on orders over {free_over}.\nIf you need it within two days, choose express at "
                       "checkout; otherwise standard is the cheaper choice.",)),
        Case(("Is the {gadget} compatible with my {device}?", "will the {gadget} work with a {device}"),
             ("Yes, the {gadget} works with any {device} that has Bluetooth 5.0 or later.",)),
        Case(("Does the {product} come in other colours?", "what colors does the {product} come in"),
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
               "what's going on with {order}", "any news on order {order}?",
               "I ordered the {product} last week and still have no update. Order {order}."),
    "paid": ("How much did I pay for order {order}?", "what was the total of {order}", "how much was order {order}",
             "what did {order} cost me in the end?"),
    "items": ("What was in order {order}?", "which items are in {order}", "remind me what I ordered in {order}",
              "can you list what's in my order {order}"),
    "breakdown": ("Can you break down the charge for order {order}?", "why was I charged that much for {order}?",
                  "explain the charge for order {order} step by step", "what exactly am I paying for in {order}?"),
    "cancel": ("Please cancel my order {order}", "Can I still cancel order {order}? I ordered it by mistake",
               "cancel {order} pls, found it cheaper elsewhere", "I'd like to cancel {order}"),
}
VAGUE_ORDER_QUESTIONS: dict[str, tuple[str, ...]] = {
    "status": ("Where is my order?", "hi, when will my stuff arrive", "can you check my order status"),
    "cancel": ("I want to cancel my order", "pls cancel my order"),
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
    "Does the {gadget} come with a charger in the box?", "Can I book a repair appointment in person?",
    "Do you deliver on Sundays?", "Can I rent the {product} instead of buying it?",
)
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
