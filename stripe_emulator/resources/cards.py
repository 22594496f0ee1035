"""Stripe's test PaymentMethods (`pm_card_*`) and how each behaves (docs.stripe.com/testing)."""
from collections import namedtuple

# behaviour: "succeed"; "decline" (code, decline_code); "authenticate" (when: always |
# unless_setup | on_session, then: succeed | a decline code). Flags: dispute reason, funds
# available at once, refunds that fail or wait later.
Card = namedtuple("Card", "number brand funding country behaviour code decline_code when "
                          "after dispute bypass refund")
DECLINE_MESSAGES = {
    "generic_decline": "Your card was declined.",
    "insufficient_funds": "Your card has insufficient funds.",
    "lost_card": "Your card was declined.",
    "stolen_card": "Your card was declined.",
    "card_velocity_exceeded": "Your card was declined for making repeated attempts too "
                              "frequently or exceeding its amount limit.",
    "fraudulent": "Your card was declined.",
    "expired_card": "Your card has expired.",
    "incorrect_cvc": "Your card's security code is incorrect.",
    "processing_error": "An error occurred while processing your card. Try again in a "
                        "little bit.",
    "authentication_required": "Your card was declined. This transaction requires "
                               "authentication.",
}


def _card(number, brand="visa", behaviour="succeed", code=None, decline=None, when=None,
          after="succeed", dispute=None, bypass=False, refund=None, funding="credit",
          country="US"):
    return Card(number, brand, funding, country, behaviour, code, decline, when, after,
                dispute, bypass, refund)


def _decline(number, decline, code="card_declined", brand="visa"):
    return _card(number, brand, "decline", code, decline)


CARDS = {
    "pm_card_visa": _card("4242424242424242"),
    "pm_card_visa_debit": _card("4000056655665556", funding="debit"),
    "pm_card_mastercard": _card("5555555555554444", "mastercard"),
    "pm_card_mastercard_debit": _card("5200828282828210", "mastercard", funding="debit"),
    "pm_card_amex": _card("378282246310005", "amex"),
    "pm_card_discover": _card("6011111111111117", "discover"),
    "pm_card_chargeDeclined": _decline("4000000000000002", "generic_decline"),
    "pm_card_visa_chargeDeclined": _decline("4000000000000002", "generic_decline"),
    "pm_card_chargeDeclinedInsufficientFunds": _decline("4000000000009995",
                                                        "insufficient_funds"),
    "pm_card_visa_chargeDeclinedInsufficientFunds": _decline("4000000000009995",
                                                             "insufficient_funds"),
    "pm_card_chargeDeclinedLostCard": _decline("4000000000009987", "lost_card"),
    "pm_card_visa_chargeDeclinedLostCard": _decline("4000000000009987", "lost_card"),
    "pm_card_chargeDeclinedStolenCard": _decline("4000000000009979", "stolen_card"),
    "pm_card_visa_chargeDeclinedStolenCard": _decline("4000000000009979", "stolen_card"),
    "pm_card_visa_chargeDeclinedVelocityLimitExceeded": _decline(
        "4000000000006975", "card_velocity_exceeded"),
    "pm_card_chargeDeclinedExpiredCard": _decline("4000000000000069", None, "expired_card"),
    "pm_card_chargeDeclinedIncorrectCvc": _decline("4000000000000127", None,
                                                   "incorrect_cvc"),
    "pm_card_chargeDeclinedProcessingError": _decline("4000000000000119", None,
                                                      "processing_error"),
    "pm_card_chargeDeclinedFraudulent": _decline("4100000000000019", "fraudulent"),
    "pm_card_radarBlock": _decline("4100000000000019", "fraudulent"),
    "pm_card_riskLevelHighest": _decline("4000000000004954", "fraudulent"),
    "pm_card_chargeCustomerFail": _decline("4000000000000341", "generic_decline"),
    "pm_card_authenticationRequired": _card("4000002760003184", behaviour="authenticate",
                                            when="always"),
    "pm_card_authenticationRequiredOnSetup": _card("4000002500003155",
                                                   behaviour="authenticate",
                                                   when="unless_setup"),
    "pm_card_authenticationRequiredSetupForOffSession": _card(
        "4000003800000446", behaviour="authenticate", when="on_session"),
    "pm_card_authenticationRequiredChargeDeclinedInsufficientFunds": _card(
        "4000008260003178", behaviour="authenticate", when="always",
        after="insufficient_funds"),
    "pm_card_threeDSecure2Required": _card("4000000000003220", behaviour="authenticate",
                                           when="always"),
    "pm_card_threeDSecureRequiredChargeDeclined": _card(
        "4000008400001629", behaviour="authenticate", when="always",
        after="generic_decline"),
    "pm_card_threeDSecureOptional": _card("4000000000003055"),
    "pm_card_createDispute": _card("4000000000000259", dispute="fraudulent"),
    "pm_card_createDisputeProductNotReceived": _card("4000000000002685",
                                                     dispute="product_not_received"),
    "pm_card_createDisputeInquiry": _card("4000000000001976", dispute="inquiry"),
    "pm_card_bypassPending": _card("4000000000000077", bypass=True),
    "pm_card_bypassPendingInternational": _card("4000003720000278", bypass=True,
                                                country="BR"),
    "pm_card_refundFail": _card("4000000000005126", refund="fail"),
    "pm_card_pendingRefund": _card("4000000000007726", refund="pending"),
}


def billing_details():
    """Empty billing details as Stripe shows them."""
    return {"address": {"city": None, "country": None, "line1": None, "line2": None,
                        "postal_code": None, "state": None},
            "email": None, "name": None, "phone": None, "tax_id": None}


def payment_method(emu, pm_id):
    """A new (unattached) PaymentMethod object of a test card; its id is given by the caller
    (see payment_methods.new_payment_method)."""
    info = CARDS[pm_id]
    return {"id": pm_id, "object": "payment_method", "allow_redisplay": "unspecified",
            "created": emu.now(), "livemode": False, "type": "card", "customer": None,
            "customer_account": None,
            "metadata": {}, "billing_details": billing_details(),
            "card": card_details(info)}


def card_details(info):
    """The `card` hash of a PaymentMethod."""
    return {"brand": info.brand, "display_brand": info.brand, "exp_month": 12,
            "exp_year": 2034, "funding": info.funding, "last4": info.number[-4:],
            "country": info.country,
            "checks": {"address_line1_check": None, "address_postal_code_check": None,
                       "cvc_check": "pass"},
            "wallet": None, "networks": {"available": [info.brand], "preferred": None},
            "three_d_secure_usage": {"supported": True}, "generated_from": None,
            "fingerprint": "emu" + info.number[-8:], "regulated_status": "unregulated"}


def decline_message(info, code=None):
    """The message of a decline (by decline code, else by error code)."""
    return DECLINE_MESSAGES.get(code or info.decline_code or info.code,
                                "Your card was declined.")
