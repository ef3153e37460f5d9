"""A private certificate authority for TLS tests: a CA and a server certificate for 127.0.0.1.

Made with ``cryptography`` (a dependency of moto), so no ``openssl`` binary is needed.
"""

import datetime
import ipaddress
import ssl

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(text):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def _certificate(subject, issuer, public_key, signing_key, ca, now):
    # Key identifiers, and Key Usage on the CA: Python 3.13's default context checks them strictly.
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()),
                              critical=False))
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                          encipher_only=False, decipher_only=False), critical=True)
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                        critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def private_ca(directory):
    """``(ca_file, server_context)``: the CA's PEM file and an SSLContext serving 127.0.0.1 with a
    certificate that CA signed (and nobody else trusts)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _certificate(_name("bareos-libcloud test CA"), _name("bareos-libcloud test CA"), ca_key.public_key(),
                           ca_key, True, now)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = _certificate(_name("127.0.0.1"), ca_cert.subject, server_key.public_key(), ca_key, False, now)
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    chain = directory / "server.pem"
    chain.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM)
                      + server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(chain))
    return str(ca_file), context
