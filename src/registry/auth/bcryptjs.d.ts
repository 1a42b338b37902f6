// bcryptjs 2.x ships no type declarations; the two functions used here.
declare module 'bcryptjs' {
  export function compare(password: string, hash: string): Promise<boolean>;
  export function hashSync(password: string, rounds?: number): string;
  const bcrypt: { compare: typeof compare; hashSync: typeof hashSync };
  export default bcrypt;
}
