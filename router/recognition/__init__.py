"""Recognition: who a contact is, across channels. Identifier normalization,
resolution to one customer, the customer context the rules see, the optional
external context provider, and the customer profiles a CRM keeps. It calls
the store; the store never calls it."""
