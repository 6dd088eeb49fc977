/* Unit tests for cg_azure: the Entra and managed identity requests as
 * azure-identity makes them, and both kinds of token answer. */
#include <string.h>

#include <apr_strings.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "unit.h"
#include "cg_azure.h"
#include "cg_jwt.h"

/* A throwaway self-signed certificate and keys made for this test with
 * openssl req -x509 -newkey rsa:2048 -nodes (and openssl pkey -aes256). */
static const char CERT_PEM[] = "-----BEGIN CERTIFICATE-----\n"
                               "MIIDITCCAgmgAwIBAgIUEFHWPDhlAy9M46kEoSIppikJbHMwDQYJKoZIhvcNAQEL\n"
                               "BQAwHzEdMBsGA1UEAwwUbW9kX2NsYXVkZSB1bml0IHRlc3QwIBcNMjYxMjAxMDM0\n"
                               "NDQxWhgPMjEyNjExMDcwMzQ0NDFaMB8xHTAbBgNVBAMMFG1vZF9jbGF1ZGUgdW5p\n"
                               "dCB0ZXN0MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAjaEiG9mnvkUw\n"
                               "IeOKP4nincksEr9KX9sbNTMgTN0ofK2TKkfN2VdkLkTKj15IFhkwVRBDudi7OQ1g\n"
                               "WoWvoYqHw+ilA3MV9c7FPLMV2O5KSi4x6oSqFdQCkhavEK1oE/wU6fVQ6zJN96A7\n"
                               "pZD4o0oBLIChUMO1L1JEOt5c146XXelSn6hb7/G9+21csbcvkC6K8OjbhtNocf44\n"
                               "bMOtUncSDdHE9+fZa5R7TzkgChaUve3Q5d0ppMq2xShU1yLdubfsm5X07aniAnWc\n"
                               "QJO8kU7rD1CMHjjyEu7kbIt7b4VMs1wEhxVyx7qd9JwBCmz7CcdzxyhBdT4Hxls0\n"
                               "EfyErpDVtQIDAQABo1MwUTAdBgNVHQ4EFgQU54+U1j8EgDe7AD4CEHmIqBycuoMw\n"
                               "HwYDVR0jBBgwFoAU54+U1j8EgDe7AD4CEHmIqBycuoMwDwYDVR0TAQH/BAUwAwEB\n"
                               "/zANBgkqhkiG9w0BAQsFAAOCAQEAK0P8U7tBuDd4m39JVZNfl+yP7KSfebqBwua5\n"
                               "JGOZUYEGvzdqfo/FEwj/9XbVrZYt9PI7wPtys62sWeQlKf6vXzs9nqiLHMAqOEQZ\n"
                               "+ylzAuLDWTJjhQC8GSiZZY4NyRSg6j+4L5xvaS8YXEhat7C6FG/EFYcDjp3/HlgD\n"
                               "qAzw8MTFUdhhQl8BXGNgXTuzps58PmMB3RrChJYbi7gjKay7/mxbtJHHLG8rCjGd\n"
                               "GtnH6d9goYUWRhwCDXYItXjxodobbiVj/V3glVr+Zcbfb0sLyDYFCZNW+VaAKMQd\n"
                               "a019JW7+QQv+YA5yZJNrbinh+31IZ9Q8jp7FIaYV0aPzUvfkBg==\n"
                               "-----END CERTIFICATE-----\n";
static const char KEY_PEM[] = "-----BEGIN PRIVATE KEY-----\n"
                              "MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCNoSIb2ae+RTAh\n"
                              "44o/ieKdySwSv0pf2xs1MyBM3Sh8rZMqR83ZV2QuRMqPXkgWGTBVEEO52Ls5DWBa\n"
                              "ha+hiofD6KUDcxX1zsU8sxXY7kpKLjHqhKoV1AKSFq8QrWgT/BTp9VDrMk33oDul\n"
                              "kPijSgEsgKFQw7UvUkQ63lzXjpdd6VKfqFvv8b37bVyxty+QLorw6NuG02hx/jhs\n"
                              "w61SdxIN0cT359lrlHtPOSAKFpS97dDl3SmkyrbFKFTXIt25t+yblfTtqeICdZxA\n"
                              "k7yRTusPUIweOPIS7uRsi3tvhUyzXASHFXLHup30nAEKbPsJx3PHKEF1PgfGWzQR\n"
                              "/ISukNW1AgMBAAECggEAFlvfGOL4aKEfG2aC44uG126UMuR4nx/l0HUBDyll9CLp\n"
                              "5gWecYaqpeRNzyrs+fIhj3hJHNyil/vs33WV98x5KPxAGsaPK7ZoLHBATXY3C7V1\n"
                              "w2aMvHPzMPF8U0dw9CC6g4HrM6pGJUbqS7XSjuLGwyoObYPsBWu5IksLAKu96UEJ\n"
                              "liCe1cN8AtsWf4Ajg7UpPAQ1ICF5xK+XWxF3UKMXKMun/DiMdWugqClALKy/gRKz\n"
                              "jpK7Uvts4+0ZnCe5ETv99dFbPHrwbB/VE3/5ksH1lzkEQ0XLjR+Txdg0XGhnkpiD\n"
                              "BSshPhElB+B8CKdJWR/N7Cw0bPD+XxY9y2MUBSvveQKBgQDFHpKHpYN308s4MzE4\n"
                              "f+N52+QmX6Ur3pboK8L6yTkercs9FkU73RwjikWwQXGo8gyWIPicu57yW9GGyIbQ\n"
                              "C1Ra2syhB/xwWbETVWv3k5lxpo4YDpeS7sdupJWF0MZjFb8O6CZ9GuwsdpW+MOUn\n"
                              "3OWU5AMbEK+es3a9NHe5V92WrQKBgQC371LiWp4Iu85TROlSQKfhUSiISP73lNYB\n"
                              "9MLBaqfNHMpODzYi9FRtFBnJXlyHvTOzq5eCNdNbRMZj0/KLUPHNGsBVC6wyZTTD\n"
                              "7ExoAZx/6xq82Tyu6/WBiTy2w2PgWwIjUshGmWRV6lZ0zY8sce5I0FMgcDyzUGBs\n"
                              "wSdaiL0EKQKBgAzpjMWv9OWzjPtYdx/xWLBR1CcjWsl94jrBKxuMdN5qmgadX9ml\n"
                              "CUPWuevqzYw4ltR6wm5Z5/aORzJiDlqwc00kSgU+Za3iYjQXA2SLWaDVPTecNRed\n"
                              "5ph71YOXgndZJFPQpzzIt7HN7s8vmsM6uBtBuGZceHSX4u5P8ovEkrJdAoGAFlOL\n"
                              "eQRM2HyLb9oWhDBq8FOcmuZZZI4BaB1gon+ivKf4+n6oMJf9w3vEIYg9rRBPPUjf\n"
                              "zCNic1qmxilM8JIzt5S+sdQH49obDIkbQSio6XINPc0Uq5riowWYhAq1jd8eJFGB\n"
                              "E+i8oB0gv27QKTHvHZGD9ZUKGS3xdmH/t+KPJvkCgYApT+R8MKyRF/n4a+2WHIC5\n"
                              "8A21etmXIIIlR3jMYm5r8UlqHDyy2usHjZy/4Xu9Fr9EjYIV5UmID1EvKh+Ta78j\n"
                              "MjFzj6d1K8LrNeoZKL7Q+u89efbhTQcaiB3nNfFIhSQ3Vyg1gjpy9jvDxY6cHE1M\n"
                              "9uBwFcyldyrWGke8cjBrUw==\n"
                              "-----END PRIVATE KEY-----\n";
static const char OTHER_KEY_PEM[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQCgdUMiVW7h7sQw\n"
    "zhVf0cVpJmZzC97WaFOnawdJBvfkQA5MhMSwJdbFDP+49OMDC1vYemGsqKezi4Cm\n"
    "1zBNqPc0QWUq+yunOcPespMXgtS7lfwpvXCQ3I295Ypu+z5oePCwQfAGmK30GlkE\n"
    "SblFmiXRVQW4fgO3i5tkYcngl0FKQRl1lFhAw0s/pLjr7u77Paw9Nm/NF96gjkPC\n"
    "g9HcQ7onYNCh0GzF0G5kmHHiSLVmh0MZKLkqzAsJL3+ZPr5sXUhiYOj8xRi7em2n\n"
    "sWQFxvwhq4IsQdQ5KXKKOS+IwzS3xDc8gi9smRw1OEmxPvxn08f5BvbY1uFyKMHm\n"
    "mJ6NSyBvAgMBAAECggEATfn+aIp9CrXWSON1lq2iEmHzaphLsAVeFd+Y2D/XKuiI\n"
    "Kl5hGTsiPnt9MHxtb7bO6Qo8OkRxzvqNyEaN9keU7qOTDwqloawcSDae7c+KIykV\n"
    "tJEXyYYtKaoJlrppDysqyHUauJHtA1HkjYVoUG9DTpHTaF9w3fstxmARU6Advf/T\n"
    "1irU+p5CGWVhpw4jcKSQ03L01/IMoUqyRg9psdC3sfi+6fOGPyf+uAGDtxPUW5d4\n"
    "YBhq5iY2kd7cN7go50AvPt9jpK84GOhrzHk9D1byuLBM7mxxFCYlKAf5Y4AXsqOz\n"
    "XatjvhC12fvayWYIf4XCvQXjmJRWX0BCrq/ZpbaZqQKBgQDhDqkNBsPrXxreABGB\n"
    "uCCdNYgBeLKllvAggifJ9/dtbaAAhI6QmrMYWLpex6fOPaWEm0nT+0ZruRqNor+T\n"
    "OQqpCXxJPPv8nUUu2LC+m3XXE2yOdkSCYyCCLmlufQdvj1NvfgF5vuKp77wSuNFY\n"
    "l+iIlpHu5OtQcVLnbTbpbNCR5wKBgQC2hOdaocNO86Ul4n+O9Z5a57UuOyH1si5g\n"
    "RS5K0JbllGq45x8YBr+dB8lKW1vO8REjAc0K86+PIay3Cg3oVSZzCHFvPjBqqztD\n"
    "od1Rkdkam+2yxxZl/JuVLXN1L9g3GXyPWq4dBCNjBYyCfGT95OuYXAy/lylb/t99\n"
    "2BHXvgO8OQKBgDtm9TPc/0VW2u6Rsg09Hk6gXH+W7gBK8KKD+CCU9JfLgZnhYwfD\n"
    "7VWVxctSg3YqS0/O9ROglRvFxb5woIQpYCjxuf5SvGgW0rXkt/H3cokMNXD8wmRv\n"
    "6ZqyyV1CXv4RJIKfDaCmw4j7H/cJFSh/H/89TtNxVLLs1mcDKqU99WctAoGBAJYQ\n"
    "IZNfqo/wPJkwZ0Yn5cHB/jH7hklW7VBTsOLsKxSo+TH7PJJpggNe0n3jLVGw3DEX\n"
    "GvllL7OTsUhw6MxbrhgoGfOngvFAxaIupCObsY9yInW5wE2r6lM1olb4NmHe/41x\n"
    "tfO/YkTY3BSwp+wj2hxTmluvsd6kaCY0jz79SF7pAoGBALDKsnon3pNyKYfElwkO\n"
    "mIhwqj8ppLkBFis4Xzm+QjKJELQzfaNWIMOEKqOyOpNe+IARexaXMsN4XAjR9GXG\n"
    "2b38BjNWxYvO1CSWH6iTmqCO77lvJNUVVcsv84M2UUAfwAm4uWIrHPvRLMlsmPDO\n"
    "5QzBxdDZ58iTN8XrSJwEfOSD\n"
    "-----END PRIVATE KEY-----\n";
static const char ENC_KEY_PEM[] =
    "-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
    "MIIFLTBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQwwHAQIC+sxZ4PY1cYCAggA\n"
    "MAwGCCqGSIb3DQIJBQAwHQYJYIZIAWUDBAEqBBCrCKvo2Q4FvnFmoBJ8apfRBIIE\n"
    "0DGWjsxznG+8YDUUC8hJVAT+T8mJ3VGSrIFZVG74cQ+TmuHSpRXNcCNSsFlwYE/G\n"
    "KIb+cOgxGpwmI0k8fpttWt2eoflewBU0KbGDZ/3NmaHvpf3Yvua65Na2hftXmDaY\n"
    "XxBc9KyClWe5rp/X4nb5uO+GO7o75eTi9lvavqlY8oAHKUG/vUD60+NDdt36pLab\n"
    "6d6YnBEIkioADKbYeb0kcERETr8YjCZ0mX/145ElmhayVPHXSBsMYhV49Z/YezWM\n"
    "rOxypIC3iy7iuHDFPMyA90jCq+FoZI6+rHzdeB4GwQojL7wRYUmeZQpOhOrWuu21\n"
    "WYerguc59pVo/6Ny087jmn8CyTFIbtE9EQ5ynEacWvVzpBU368KZYP2iYjE/rzUa\n"
    "j5URfbnwrsy7wFAjF4bbHewiDMSwxUyNpNrwPzS9JAUDiPy6ccnCGRj3kq3jpzxd\n"
    "7ENUTWWB7HBUrhDvnEkpirmJ8THyMFlKBF3ZxxcLtC/0200+JHYslLlfgZsVgalk\n"
    "Nn1KvbbMbEap/4bvwyL0EC1lzKz8bXYEND5XYQ32KNfpJIzrFGZt+0lNWPR+P4Qc\n"
    "iu8J+3np7hiJNU4ToxhH7rEpl7xVF2Qff9mN+uhjimO27EnP8S/nMObSIKE2o3Y0\n"
    "m3iHTUoM4y/b6b6Js9PQOyQD2wWoevOIEhkS2EutuQawUcrEqTY9A2Z5nWUgXsi8\n"
    "APKpmvw02hN/yCmJqFsjqgNqSAmTfkkkWLNhPMcNBjRrqqPDYYdKnimZ+XKiI5yG\n"
    "tywQfOqgTerVtNxzoN/DE+XkUn3etD0C/VMAuOWXo4+/HqfKjOaXzbhrPkdx5762\n"
    "wWJj5FkjD1L0yRvMdtWF0O05xg96le/NGYW++jZAd8XaSNwNBgVf0yZlbkw45bLi\n"
    "2Dkkn7LRj0lZhX+j6TPpjZKDgJZNFya+AoZm7XPdf17sqmUa4H0TuVMf9t+Qtv4z\n"
    "RALDrPIgelQyNmAG6qPgC9KzA88owP1EqgnhQRU51qNG/nsEWmU7s1AKgRwloszj\n"
    "2B85suTQtPWnO+wXRfyTmIfzj6NQ3C0Ql6Ymr3T3JuCkWD1ZA8J/6wap8l4U1Wkz\n"
    "G+/UGhl/riNYXxRGiEuOX5tn9WtDvoICEwLoNEQ6ZmjopRIyu1h6Tj/aLKIpkW6j\n"
    "0o9HouSYm6em5znkCaklyWxwY0WYRij9/WNDtMRZgSIPtD2OwdIWgLWrUMXTH9QC\n"
    "mk1gP1wyuB2+3mc8U13AJsM/ms8ng6GjG60dGkjtBCJ3UAgas/NJnPpfMrz9Jukx\n"
    "HkMVGnCLS8AWr/cwMIwRXtYPbI4YP0haQxswX5KZfzPKF4MY+ocmJJu5b9hqxR/l\n"
    "5WAWxEC3GMd+hffC4Ny05tLf8XotdTB2Dp+nWlASG8qJBe4QHwRlR9crsY5MxpGJ\n"
    "3rC6TBdsbBhrZWQKCd+ioF2dyalXdoajTOwNYFCoHjua/BJztMpy3VihLLO7Z4JC\n"
    "hKwjnDCFfdRz3SSTVH9tV+eZqJTf6Cmd1XkCskpdYfm6FgzfiDw0wjKpOtJHv1aj\n"
    "Fyw6L6/Gvigos96DLVHss46WPiC8+hoHLy7k2gg+y/AqbbqW0tqS+k+A9ABf2fZt\n"
    "XfVMoqN0QluRq+dhDY8egnT1oTgrqC4tTysXsNtl8ATK\n"
    "-----END ENCRYPTED PRIVATE KEY-----\n";

/* Its SHA-1 thumbprint, base64url: openssl x509 -outform DER | openssl dgst -sha1 -binary */
#define CERT_X5T "kwNqVfD1EQLhRnGflX5bVV3k1iU"

START_TEST(requests)
{
    ck_assert_str_eq(cg_azure_token_url(unit_pool, NULL, "contoso.onmicrosoft.com"),
                     "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token");
    ck_assert_str_eq(cg_azure_token_url(unit_pool, "login.microsoftonline.us/", "t-1"),
                     "https://login.microsoftonline.us/t-1/oauth2/v2.0/token");
    ck_assert_str_eq(cg_azure_token_url(unit_pool, "http://127.0.0.1:9//", "t"),
                     "http://127.0.0.1:9/t/oauth2/v2.0/token");
    ck_assert_ptr_null(cg_azure_token_url(unit_pool, NULL, ""));
    ck_assert_ptr_null(cg_azure_token_url(unit_pool, NULL, "t/../x"));
    ck_assert_ptr_null(cg_azure_token_url(unit_pool, NULL, "t?x=1"));
    ck_assert_str_eq(cg_azure_client_form(unit_pool, "cid", "s3cr+t/=", NULL),
                     "grant_type=client_credentials&client_id=cid&client_secret=s3cr%2bt%2f%3d"
                     "&scope=https%3a%2f%2fcognitiveservices.azure.com%2f.default");
    ck_assert_str_eq(cg_azure_client_form(unit_pool, "cid", NULL, "eyJ.a.b"),
                     "grant_type=client_credentials&client_id=cid&client_assertion_type="
                     "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
                     "&client_assertion=eyJ.a.b"
                     "&scope=https%3a%2f%2fcognitiveservices.azure.com%2f.default");
    ck_assert_str_eq(cg_azure_msi_url(unit_pool, "http://169.254.169.254/", 0, NULL),
                     "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01"
                     "&resource=https%3a%2f%2fcognitiveservices.azure.com");
    ck_assert_str_eq(cg_azure_msi_url(unit_pool, "http://127.0.0.1:41/msi/token", 1, "c i"),
                     "http://127.0.0.1:41/msi/token?api-version=2019-08-01"
                     "&resource=https%3a%2f%2fcognitiveservices.azure.com&client_id=c+i");
    ck_assert_ptr_null(cg_azure_msi_url(unit_pool, "169.254.169.254", 0, NULL));
    ck_assert_ptr_null(cg_azure_msi_url(unit_pool, "http://x/\r\nEvil: 1", 1, NULL));
    ck_assert_ptr_null(cg_azure_msi_url(unit_pool, NULL, 1, NULL));
}
END_TEST

START_TEST(answers)
{
    apr_time_t now = apr_time_from_sec(1764547200), exp;
    const char *tok;

#define TOK(s) cg_azure_token_parse(unit_pool, (s), strlen(s), now, &tok, &exp)
    /* Entra */
    ck_assert_ptr_null(TOK("{\"token_type\":\"Bearer\",\"expires_in\":3599,\"ext_expires_in\":"
                           "3599,\"access_token\":\"eyJ0eXAi.x.y\"}"));
    ck_assert_str_eq(tok, "eyJ0eXAi.x.y");
    ck_assert_int_eq(exp, now + apr_time_from_sec(3599));
    /* IMDS: numbers as strings */
    ck_assert_ptr_null(TOK("{\"access_token\":\"m\",\"client_id\":\"c\",\"expires_in\":\"86399\","
                           "\"expires_on\":\"1764633599\",\"resource\":\"https://"
                           "cognitiveservices.azure.com\",\"token_type\":\"Bearer\"}"));
    ck_assert_int_eq(exp, now + apr_time_from_sec(86399));
    /* App Service: expires_on only */
    ck_assert_ptr_null(TOK("{\"access_token\":\"a\",\"expires_on\":\"1764550800\",\"resource\":"
                           "\"r\",\"token_type\":\"Bearer\"}"));
    ck_assert_int_eq(exp, apr_time_from_sec(1764550800));
    /* refusals */
    ck_assert_str_eq(TOK("{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000215: "
                         "Invalid client secret provided.\\r\\nTrace ID: 1\",\"error_codes\":"
                         "[7000215]}"),
                     "the endpoint refused: invalid_client: AADSTS7000215: Invalid client "
                     "secret provided.");
    ck_assert_ptr_null(tok);
    ck_assert_int_eq(exp, 0);
    ck_assert_str_eq(TOK("{\"error\":\"invalid_request\",\"error_description\":\"Identity not "
                         "found\"}"),
                     "the endpoint refused: invalid_request: Identity not found");
    ck_assert_ptr_nonnull(strstr(TOK("{\"access_token\":\"a\"}"), "expires"));
    ck_assert_ptr_nonnull(strstr(TOK("{\"access_token\":\"a\",\"expires_on\":\"1764547100\"}"),
                                 "expires")); /* already past */
    ck_assert_ptr_nonnull(
        strstr(TOK("{\"access_token\":\"a\",\"expires_in\":\"12x\"}"), "expires"));
    ck_assert_ptr_nonnull(strstr(TOK("{\"access_token\":\"a\",\"expires_in\":-5}"), "expires"));
    ck_assert_ptr_nonnull(
        strstr(TOK("{\"access_token\":\"a\",\"expires_in\":60,\"token_type\":\"pop\"}"), "Bearer"));
    ck_assert_ptr_nonnull(strstr(TOK("{\"access_token\":\"a b\",\"expires_in\":60}"), "header"));
    ck_assert_ptr_nonnull(TOK("nope"));
#undef TOK
}
END_TEST

/* The JSON of a JWS part. */
static json_t *jws_part(const char *jws, int n)
{
    const char *start = jws, *dot;
    apr_size_t len;
    unsigned char *raw;

    while (n-- > 0) {
        start = strchr(start, '.') + 1;
    }
    dot = strchr(start, '.');
    ck_assert_int_eq(cg_jwt_b64url_decode(unit_pool, start, (apr_size_t)(dot - start), &raw, &len),
                     APR_SUCCESS);
    return json_loadb((const char *)raw, len, 0, NULL);
}

START_TEST(certificate_assertions)
{
    cg_azure_cert_t *cert;
    const char *jws, *dot;
    json_t *h, *c;
    BIO *bio;
    X509 *x;
    EVP_PKEY *pub;
    EVP_MD_CTX *ctx;
    apr_size_t siglen;
    unsigned char *sig;
    apr_time_t now = apr_time_from_sec(1764547200);

    /* either order */
    ck_assert_ptr_null(cg_azure_cert_load(unit_pool,
                                          apr_pstrcat(unit_pool, KEY_PEM, CERT_PEM, NULL),
                                          strlen(KEY_PEM) + strlen(CERT_PEM), &cert));
    ck_assert_ptr_null(cg_azure_cert_load(unit_pool,
                                          apr_pstrcat(unit_pool, CERT_PEM, KEY_PEM, NULL),
                                          strlen(KEY_PEM) + strlen(CERT_PEM), &cert));
    jws = cg_azure_cert_assertion(unit_pool, cert, "cid",
                                  "https://login.microsoftonline.com/t/oauth2/v2.0/token", now, 0);
    ck_assert_ptr_nonnull(jws);
    h = jws_part(jws, 0);
    c = jws_part(jws, 1);
    ck_assert_str_eq(json_string_value(json_object_get(h, "alg")), "RS256");
    ck_assert_str_eq(json_string_value(json_object_get(h, "x5t")), CERT_X5T);
    ck_assert_ptr_nonnull(json_object_get(h, "x5t#S256"));
    ck_assert_ptr_null(json_object_get(h, "x5c"));
    ck_assert_str_eq(json_string_value(json_object_get(c, "aud")),
                     "https://login.microsoftonline.com/t/oauth2/v2.0/token");
    ck_assert_str_eq(json_string_value(json_object_get(c, "iss")), "cid");
    ck_assert_str_eq(json_string_value(json_object_get(c, "sub")), "cid");
    ck_assert_int_eq(json_integer_value(json_object_get(c, "exp")) -
                         json_integer_value(json_object_get(c, "nbf")),
                     600);
    ck_assert_int_eq(json_integer_value(json_object_get(c, "iat")), 1764547200);
    ck_assert_uint_eq(json_string_length(json_object_get(c, "jti")), 36);
    json_decref(h);
    json_decref(c);
    /* the signature verifies with the certificate's public key */
    bio = BIO_new_mem_buf(CERT_PEM, (int)strlen(CERT_PEM));
    x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    pub = X509_get_pubkey(x);
    dot = strrchr(jws, '.');
    ck_assert_int_eq(cg_jwt_b64url_decode(unit_pool, dot + 1, strlen(dot + 1), &sig, &siglen),
                     APR_SUCCESS);
    ctx = EVP_MD_CTX_new();
    ck_assert_int_eq(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pub), 1);
    ck_assert_int_eq(
        EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)jws, (size_t)(dot - jws)), 1);
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pub);
    X509_free(x);
    /* the chain along, and a fresh jti each time */
    h = jws_part(cg_azure_cert_assertion(unit_pool, cert, "cid", "https://x/t", now, 1), 0);
    ck_assert_int_eq(json_array_size(json_object_get(h, "x5c")), 1);
    json_decref(h);
    ck_assert_str_ne(cg_azure_cert_assertion(unit_pool, cert, "cid", "https://x/t", now, 0),
                     cg_azure_cert_assertion(unit_pool, cert, "cid", "https://x/t", now, 0));
    /* refusals */
#define LOAD(s) cg_azure_cert_load(unit_pool, (s), strlen(s), &cert)
    ck_assert_ptr_nonnull(strstr(LOAD("0\x82\x0a\x01binary"), "PKCS#12"));
    ck_assert_ptr_null(cert);
    ck_assert_str_eq(LOAD(KEY_PEM), "the PEM file holds no certificate");
    ck_assert_str_eq(LOAD(CERT_PEM), "the PEM file holds no private key");
    ck_assert_ptr_nonnull(
        strstr(LOAD(apr_pstrcat(unit_pool, CERT_PEM, ENC_KEY_PEM, NULL)), "encrypted"));
    ck_assert_str_eq(LOAD(apr_pstrcat(unit_pool, CERT_PEM, OTHER_KEY_PEM, NULL)),
                     "the private key does not belong to the certificate");
#undef LOAD
}
END_TEST

Suite *unit_suite_cg_azure(void)
{
    Suite *s = suite_create("cg_azure");
    TCase *tc = tcase_create("azure");

    tcase_add_checked_fixture(tc, unit_setup, unit_teardown);
    tcase_add_test(tc, requests);
    tcase_add_test(tc, answers);
    tcase_add_test(tc, certificate_assertions);
    suite_add_tcase(s, tc);
    return s;
}
