// portcullis: the tokenizer's parsers of words, variables and numbers, moved out of tokenizer.rs.

use super::*;

impl<'a> SqliTokenizer<'a> {
    pub(super) fn parse_bword(&mut self) -> usize {
        let pos = self.pos;
        
        // SQL Server bracket words: [column name]
        if let Some(end_pos) = self.memchr(b']', &self.input[pos..]) {
            let actual_end = pos + end_pos;
            let content = &self.input[pos..=actual_end];
            self.current.assign(TYPE_BAREWORD, pos, content.len(), content);
            actual_end + 1
        } else {
            let content = &self.input[pos..];
            self.current.assign(TYPE_BAREWORD, pos, content.len(), content);
            self.input.len()
        }
    }
    
    pub(super) fn parse_word(&mut self) -> usize {
        let pos = self.pos;
        let slen = self.input.len();
        
        // Find word boundary - matches C version's strlencspn character set
        // portcullis: a 256-entry table built at compile time (upstream
        // searched the delimiter string once per byte of the word).
        let mut end_pos = pos;
        
        while end_pos < slen && !WORD_DELIMITERS[usize::from(self.input[end_pos])] {
            end_pos += 1;
        }
        
        let word_len = end_pos - pos;
        let word_slice = &self.input[pos..end_pos];
        
        self.current.assign(TYPE_BAREWORD, pos, word_len, word_slice);
        
        // Check for special delimiters within word
        for (i, &byte) in word_slice.iter().enumerate() {
            if byte == b'.' || byte == b'`' {
                // For delimiter detection, we only need to check if the first i bytes
                // form a valid keyword. Since libinjection keywords are ASCII-only,
                // if the slice contains any non-UTF8 bytes (like 0xFF), it can't be 
                // a keyword anyway, so we can safely skip the lookup.
                // portcullis: looked up as bytes (same answers, no UTF-8 check).
                if self.lookup_fn.is_none() || std::str::from_utf8(&word_slice[..i]).is_ok() {
                    let token_type = self.lookup_word_bytes(&word_slice[..i]);
                    if token_type != TokenType::None && token_type != TokenType::Bareword {
                        self.current.clear();
                        let type_byte = token_type_to_byte(token_type);
                        self.current.assign(type_byte, pos, i, &word_slice[..i]);
                        return pos + i;
                    }
                }
                // If UTF-8 conversion fails, continue - can't be a keyword
            }
        }
        
        // Do full word lookup - only for valid UTF-8 sequences since keywords are ASCII-only
        if word_len < LIBINJECTION_SQLI_TOKEN_SIZE {
            // portcullis: looked up as bytes (same answers, no UTF-8 check).
            if self.lookup_fn.is_none() || std::str::from_utf8(word_slice).is_ok() {
                let token_type = self.lookup_word_bytes(word_slice);
                if token_type != TokenType::None {
                    self.current.token_type = token_type;
                }
            }
            // If UTF-8 conversion fails, leave as BAREWORD - bytes with 0xFF can't be keywords
        }
        
        end_pos
    }
    
    pub(super) fn parse_tick(&mut self) -> usize {
        // MySQL backticks
        let pos = self.parse_string_core(self.pos, CHAR_TICK, 1);
        
        // Check if backtick content is a keyword/function - only for valid UTF-8
        if let Ok(word_str) = std::str::from_utf8(&self.current.val[..self.current.len]) {
            let token_type = self.lookup_word(word_str);
            if token_type == TokenType::Function {
                self.current.token_type = TokenType::Function;
            } else {
                self.current.token_type = TokenType::Bareword;
            }
        } else {
            // If UTF-8 conversion fails, default to bareword - 0xFF bytes can't be keywords
            self.current.token_type = TokenType::Bareword;
        }
        
        pos
    }
    
    pub(super) fn parse_var(&mut self) -> usize {
        let pos = self.pos;
        let slen = self.input.len();
        let mut new_pos = pos + 1;
        
        // Count @ symbols
        let mut at_count = 1;
        if new_pos < slen && self.input[new_pos] == b'@' {
            new_pos += 1;
            at_count = 2;
        }
        
        self.current.count = at_count;
        
        // Handle special cases like @@`version`
        if new_pos < slen {
            if self.input[new_pos] == b'`' {
                self.pos = new_pos;
                let result = self.parse_tick();
                
                // Store only the backtick content (without @ symbols) like C
                // The backtick content is already parsed correctly by parse_tick
                self.current.token_type = TokenType::Variable;
                return result;
            } else if self.input[new_pos] == CHAR_SINGLE || self.input[new_pos] == CHAR_DOUBLE {
                self.pos = new_pos;
                let result = self.parse_string();
                
                // Store only the string content (without @ symbols) like C
                // The string content is already parsed correctly by parse_string
                self.current.token_type = TokenType::Variable;
                return result;
            }
        }
        
        // Regular variable name - must exactly match C implementation
        // C: " <>:\\?=@!#~+-*/&|^%(),';\t\n\v\f\r'`\""
        // portcullis: C's `strlencspn` stops at NUL too (`strchr(accept, 0)`
        // finds the terminator), so NUL ends a variable name.
        let var_chars = b" <>:\\?=@!#~+-*/&|^%(),;'\t\n\x0B\x0C\r'`\"\0";
        let mut end_pos = new_pos;
        
        while end_pos < slen && !var_chars.contains(&self.input[end_pos]) {
            end_pos += 1;
        }
        
        if end_pos == new_pos {
            // Empty variable name (just @ or @@ symbols)
            // Store the @ symbols like C implementation 
            let var_slice = &self.input[self.pos..new_pos]; // Include @ symbols
            self.current.assign(TYPE_VARIABLE, self.pos, new_pos - self.pos, var_slice);
            new_pos
        } else {
            // Non-empty variable - store the @ symbols + name like C
            let var_slice = &self.input[self.pos..end_pos]; // Include @ symbols
            self.current.assign(TYPE_VARIABLE, self.pos, end_pos - self.pos, var_slice);
            end_pos
        }
    }
    
    pub(super) fn parse_money(&mut self) -> usize {
        let pos = self.pos;
        let slen = self.input.len();
        
        if pos + 1 == slen {
            self.current.assign_char(TYPE_BAREWORD, pos, b'$');
            return slen;
        }
        
        let next_char = self.input[pos + 1];
        
        // Check for $1,000.00 format
        // portcullis: C's `strlenspn` accepts NUL too (`strchr(accept, 0)`
        // finds the terminator), here and in the tag below.
        let money_chars = b"0123456789.,\0";
        let mut end_pos = pos + 1;
        
        while end_pos < slen && money_chars.contains(&self.input[end_pos]) {
            end_pos += 1;
        }
        
        if end_pos > pos + 1 {
            // Check for special case: $. should be parsed as word
            if end_pos == pos + 2 && self.input[pos + 1] == b'.' {
                return self.parse_word();
            }
            // Found numeric content
            let money_slice = &self.input[pos..end_pos];
            self.current.assign(TYPE_NUMBER, pos, end_pos - pos, money_slice);
            return end_pos;
        }
        
        // Check for PostgreSQL $$ strings
        if next_char == b'$' {
            return self.parse_dollar_string();
        }
        
        // Check for PostgreSQL $tag$ strings
        let tag_chars = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\0";
        let mut tag_end = pos + 1;
        
        while tag_end < slen && tag_chars.contains(&self.input[tag_end]) {
            tag_end += 1;
        }
        
        if tag_end == pos + 1 {
            // Just $ followed by non-alphanumeric
            self.current.assign_char(TYPE_BAREWORD, pos, b'$');
            pos + 1
        } else if tag_end < slen && self.input[tag_end] == b'$' {
            // Found $tag$ pattern
            self.parse_tagged_dollar_string(tag_end)
        } else {
            // $ followed by letters but no closing $
            self.current.assign_char(TYPE_BAREWORD, pos, b'$');
            pos + 1
        }
    }
    
    pub(super) fn parse_number(&mut self) -> usize {
        let pos = self.pos;
        let slen = self.input.len();
        let mut end_pos = pos;
        let mut have_e = false;
        let mut have_exp = false;
        
        // Handle special prefixes 0x, 0X, 0b, 0B
        if end_pos < slen && self.input[end_pos] == b'0' && end_pos + 1 < slen {
            match self.input[end_pos + 1] {
                b'X' | b'x' => {
                    end_pos += 2;
                    while end_pos < slen {
                        match self.input[end_pos] {
                            // portcullis: NUL too, as C's `strlenspn`.
                            b'0'..=b'9' | b'A'..=b'F' | b'a'..=b'f' | 0 => end_pos += 1,
                            _ => break,
                        }
                    }
                    
                    if end_pos == pos + 2 {
                        // No hex digits after 0x
                        let token = &self.input[pos..pos + 2];
                        self.current.assign(TYPE_BAREWORD, pos, 2, token);
                        return pos + 2;
                    } else {
                        let token = &self.input[pos..end_pos];
                        self.current.assign(TYPE_NUMBER, pos, end_pos - pos, token);
                        return end_pos;
                    }
                }
                b'B' | b'b' => {
                    end_pos += 2;
                    while end_pos < slen && matches!(self.input[end_pos], b'0' | b'1' | 0) {
                        end_pos += 1;
                    }
                    
                    if end_pos == pos + 2 {
                        // No binary digits after 0b
                        let token = &self.input[pos..pos + 2];
                        self.current.assign(TYPE_BAREWORD, pos, 2, token);
                        return pos + 2;
                    } else {
                        let token = &self.input[pos..end_pos];
                        self.current.assign(TYPE_NUMBER, pos, end_pos - pos, token);
                        return end_pos;
                    }
                }
                _ => {} // Continue with normal number parsing
            }
        }
        
        let start_pos = end_pos;
        
        // Parse integer part
        while end_pos < slen && self.input[end_pos].is_ascii_digit() {
            end_pos += 1;
        }
        
        // Parse decimal part
        if end_pos < slen && self.input[end_pos] == b'.' {
            end_pos += 1;
            while end_pos < slen && self.input[end_pos].is_ascii_digit() {
                end_pos += 1;
            }
            
            if end_pos - start_pos == 1 {
                // Only read '.', this is a dot token
                self.current.assign_char(TYPE_DOT, start_pos, b'.');
                return end_pos;
            }
        }
        
        // Parse exponent
        if end_pos < slen && (self.input[end_pos] == b'E' || self.input[end_pos] == b'e') {
            have_e = true;
            end_pos += 1;
            
            if end_pos < slen && (self.input[end_pos] == b'+' || self.input[end_pos] == b'-') {
                end_pos += 1;
            }
            
            while end_pos < slen && self.input[end_pos].is_ascii_digit() {
                have_exp = true;
                end_pos += 1;
            }
        }
        
        // Oracle float/double suffix
        if end_pos < slen {
            match self.input[end_pos] {
                b'd' | b'D' | b'f' | b'F' => {
                    if end_pos + 1 == slen {
                        end_pos += 1;
                    } else if self.is_white_char(self.input[end_pos + 1]) || self.input[end_pos + 1] == b';' {
                        end_pos += 1;
                    } else if end_pos + 1 < slen && (self.input[end_pos + 1] == b'u' || self.input[end_pos + 1] == b'U') {
                        // Handle "1fUNION" -> "1f" "UNION"
                        end_pos += 1;
                    }
                }
                _ => {}
            }
        }
        
        // Check for invalid exponential format
        if have_e && !have_exp {
            let token = &self.input[start_pos..end_pos];
            self.current.assign(TYPE_BAREWORD, start_pos, end_pos - start_pos, token);
        } else {
            let token = &self.input[start_pos..end_pos];
            self.current.assign(TYPE_NUMBER, start_pos, end_pos - start_pos, token);
        }
        
        end_pos
    }
    
    // Helper functions
    
    pub(super) fn is_white_char(&self, ch: u8) -> bool {
        // Match C implementation exactly - libinjection_sqli.c lines 194-205 (char_is_white function)
        // C code: return strchr(" \t\n\v\f\r\240\000", ch) != NULL;
        // C comment:
        // /* ' '  space is 0x32
        //    '\t  0x09 \011 horizontal tab
        //    '\n' 0x0a \012 new line
        //    '\v' 0x0b \013 vertical tab
        //    '\f' 0x0c \014 new page
        //    '\r' 0x0d \015 carriage return
        //         0x00 \000 null (oracle)
        //         0xa0 \240 is Latin-1
        // */
        matches!(ch, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r' | 0xA0 | 0x00)
    }
    
    pub(super) fn memchr(&self, needle: u8, haystack: &[u8]) -> Option<usize> {
        haystack.iter().position(|&x| x == needle)
    }
}
