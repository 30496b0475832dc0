# The public RSA modulus this firmware trusts for updates (gateway/ota.py), or None: then
# every update is refused. Written by `tools/sign-firmware keygen`, which keeps the private
# key outside the repository. A public key is no secret; changing it needs a cable (or an
# update signed with the old key).
N = None
