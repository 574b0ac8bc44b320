// Watermarking and authentication of encoders: SSLGuard (ownership), SSL-Auth (integrity).
export * as sslguard from './sslguard';
export * as sslauth from './sslauth';
